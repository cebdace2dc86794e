"""The `chatkit` command group: global options, and every command registered from its module."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import IO, Any

import click

from chatkit import __version__
from chatkit.cli.admin import admin
from chatkit.cli.bench import bench
from chatkit.cli.completion import completion
from chatkit.cli.discover import discover
from chatkit.cli.gui import gui
from chatkit.cli.history import history
from chatkit.cli.join import join
from chatkit.cli.send import send
from chatkit.cli.serve import serve
from chatkit.cli.trust import trust


class ChatkitGroup(click.Group):
    """The command group, with usage errors as the one line the user guide promises:
    `Error: No such option: --nik (see `chatkit join --help`)`, not click's usage block."""

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        with one_line_usage():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with one_line_usage():  # a command's own parsing happens in here
            return super().invoke(ctx)


@contextlib.contextmanager
def one_line_usage() -> Iterator[None]:
    try:
        yield
    except click.UsageError as exc:
        if isinstance(exc, OneLineUsageError):
            raise
        message = exc.format_message()
        for click_words, ours in CLICK_WORDING.items():
            message = message.replace(click_words, ours)
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        raise OneLineUsageError(message + where) from None


#: click's type names in its messages, in words a user knows
CLICK_WORDING = {
    "is not a valid integer range.": "is not a whole number.",
    "is not a valid integer.": "is not a whole number.",
    "is not a valid float range.": "is not a number.",
    "is not a valid float.": "is not a number.",
}


class OneLineUsageError(click.UsageError):
    """A usage error shown as one `Error: ...` line, status 2."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"Error: {self.format_message()}", file=file or sys.stderr)


@click.group(cls=ChatkitGroup,
             context_settings={"help_option_names": ["-h", "--help"],
                               "auto_envvar_prefix": "CHATKIT"})
@click.version_option(__version__, "-V", "--version", prog_name="chatkit")
@click.option("--debug", is_flag=True, help="Show tracebacks for internal errors.")
def cli(debug: bool) -> None:
    """Chat on a local network from the terminal, with zero set-up.

    Start a server with `chatkit serve`, then `chatkit join --nick NAME` from any machine
    on the network (or `nc HOST 12345`).
    """


for command in (serve, join, gui, discover, send, history, admin, bench, trust,
                completion):
    cli.add_command(command)


def main() -> None:
    """Console entry point."""
    cli(prog_name="chatkit")
