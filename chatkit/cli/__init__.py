"""The `chatkit` command line: the only package that imports click.

One module per command (`serve`, `join`, `send`, `discover`, `history`, `bench`, `trust`,
`completion`), options shared by several declared once (`options`), and one boundary that turns
core errors into a line and an exit status (`boundary`). Each command parses its options,
builds a configuration and calls one core function; wording about flags lives here, never below.
"""

from chatkit.cli.app import cli, main

__all__ = ["cli", "main"]
