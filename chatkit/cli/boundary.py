"""The one boundary between chatkit's core and the terminal: a ChatkitError becomes one line on
stderr and its documented exit status; anything unexpected is one line too, with the traceback
only under `--debug`. Also the logging set-up (core modules only ever log to "chatkit.*")."""

from __future__ import annotations

import contextlib
import errno
import logging
import sys
from collections.abc import Iterator

import click

from chatkit.errors import ChatkitError, ExitCode, OutputClosed


class CliError(click.ClickException):
    """A one-line error with the exit status of the ChatkitError behind it."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        # click keeps the status per class; ours comes with each error
        self.exit_code = exit_code  # type: ignore[misc]


#: How the command line words each `remedy` a core error names (chatkit/errors.py).
REMEDIES = {
    "choose_db": "choose another with --db",
    "create_dir_or_choose_db": "create the directory first or choose another path with --db",
    "move_or_choose_db": "move it away or choose another with --db",
    "recover_or_choose_db": "move it away (`sqlite3 FILE .recover` may save its messages) "
                            "or choose another with --db",
    "permissions_or_choose_db": "check its permissions or choose another with --db",
    "own_db": "give this server its own with --db PATH, or --no-history",
    "give_db": "start `chatkit serve` first, or give --db PATH",
    "choose_port": "choose another with --port",
    "drop_reuse_port": "drop --reuse-port (give each server its own --port)",
    "share_port": "start every server on that port with --reuse-port, or give this one "
                  "another port",
    "choose_irc_port": "choose another with --irc-port",
    "choose_irc_tls_port": "choose another with --irc-tls-port",
    "drop_no_tls": "drop --no-tls",
    "lift_server_limits": "for a benchmark, start the server with --rate-limit 0 "
                          "--max-per-address 0 --max-unregistered 0 (and --max-clients above "
                          "--clients)",
    "give_password": "give it with --password-file FILE (or CHATKIT_PASSWORD, or --password)",
    "check_cluster": "start Redis or fix the URL of --cluster (docs/cluster.md)",
    "install_cluster": "pip install 'chatkit[cluster]'",
}


def describe(exc: ChatkitError) -> str:
    """The one line a user sees for a core error: what is wrong, then how to fix it here."""
    remedy = REMEDIES.get(exc.remedy or "")
    return f"{exc}; {remedy}" if remedy else str(exc)


@contextlib.contextmanager
def errors_as_click() -> Iterator[None]:
    try:
        yield
    except ChatkitError as exc:
        raise CliError(describe(exc), exc.exit_code) from None
    except click.ClickException:
        raise
    except (OutputClosed, BrokenPipeError):
        # stdout's reader went away (`| head`): click ends quietly, as for `chatkit history`
        raise BrokenPipeError(errno.EPIPE, "output closed") from None
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
