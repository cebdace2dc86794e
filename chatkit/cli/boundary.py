"""The one boundary between chatkit's core and the terminal: a ChatkitError becomes one line on
stderr and its documented exit status; anything unexpected is one line too, with the traceback
only under `--debug`. Also the logging set-up (core modules only ever log to "chatkit.*")."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

import click

from chatkit.errors import ChatkitError, ExitCode


class CliError(click.ClickException):
    """A one-line error with the exit status of the ChatkitError behind it."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@contextlib.contextmanager
def errors_as_click() -> Iterator[None]:
    try:
        yield
    except ChatkitError as exc:
        raise CliError(str(exc), exc.exit_code) from None
    except click.ClickException:
        raise
    except Exception as exc:
        if debug_enabled():
            raise
        raise CliError(f"internal error: {type(exc).__name__}: {exc} "
                       "(run `chatkit --debug ...` for the traceback)", ExitCode.ERROR) from None


def debug_enabled() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().params.get("debug"))


def setup_logging(verbosity: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s",
                                           datefmt="%H:%M:%S"))
    root = logging.getLogger("chatkit")
    root.handlers[:] = [handler]
    root.setLevel(verbosity.upper())
    root.propagate = False
