"""The `chatkit` command group: global options, and every command registered from its module."""

from __future__ import annotations

import click

from chatkit import __version__
from chatkit.cli.bench import bench
from chatkit.cli.completion import completion
from chatkit.cli.discover import discover
from chatkit.cli.history import history
from chatkit.cli.join import join
from chatkit.cli.send import send
from chatkit.cli.serve import serve
from chatkit.cli.trust import trust


@click.group(context_settings={"help_option_names": ["-h", "--help"],
                               "auto_envvar_prefix": "CHATKIT"})
@click.version_option(__version__, "-V", "--version", prog_name="chatkit")
@click.option("--debug", is_flag=True, help="Show tracebacks for internal errors.")
def cli(debug: bool) -> None:
    """Chat on a local network from the terminal, with zero set-up.

    Start a server with `chatkit serve`, then `chatkit join --nick NAME` from any machine
    on the network (or `nc HOST 12345`).
    """


for command in (serve, join, discover, send, history, bench, trust, completion):
    cli.add_command(command)


def main() -> None:
    """Console entry point."""
    cli(prog_name="chatkit")
