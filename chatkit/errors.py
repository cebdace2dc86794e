"""The chatkit error hierarchy and the documented exit statuses.

Core modules raise these and say what is wrong; only `chatkit.cli` turns them into a line and
an exit status. A core error that the user fixes with an option names the fix by a `remedy`
key (say "choose_db"), never by the flag: the CLI words it ("choose another with --db"), so
another front end (a GUI, an IRC door) can word it its own way.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit statuses of the `chatkit` command (documented in docs/user-guide.md)."""

    OK = 0
    ERROR = 1  # anything not listed below
    USAGE = 2  # bad command-line usage (click's own status)
    UNREACHABLE = 3  # could not connect, or the connection was lost
    REFUSED = 4  # the server refused us: nick taken, bad nick, unknown room, ...
    PROTOCOL = 5  # the peer does not speak our protocol (version mismatch, garbage)
    NOT_FOUND = 6  # discovery found no server
    IDENTITY = 7  # the server's certificate is not the pinned (or announced) one
    NO_MATCH = 8  # nothing matched (`chatkit history --grep/--room/--since`)


class OutputClosed(Exception):
    """Whoever read our output went away (`chatkit join ... | head -2`): not an error to
    report, the command ends quietly, as any Unix filter does."""


class ChatkitError(Exception):
    """Base of every error chatkit reports to a user as one line."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, remedy: str | None = None) -> None:
        super().__init__(message)
        #: what the user can change to fix it, as a key the front end words (see module doc)
        self.remedy = remedy


class ConfigError(ChatkitError):
    """Bad configuration or command-line values caught by core code."""

    exit_code = ExitCode.USAGE


class UnreachableError(ChatkitError):
    """The server could not be reached, or the connection dropped."""

    exit_code = ExitCode.UNREACHABLE


class RefusedError(ChatkitError):
    """The server answered with an error that ends what we were doing."""

    exit_code = ExitCode.REFUSED

    def __init__(self, message: str, code: str = "refused", *, remedy: str | None = None
                 ) -> None:
        super().__init__(message, remedy=remedy)
        self.code = code


class ServerRefusal(RefusedError):
    """The server refused the connection itself, before any protocol, with its plain
    `!!! reason` line (server full, too many connections from one address, an address
    throttled after wrong passwords, a plain connection to a TLS-only server)."""

    def __init__(self, reason: str, *, remedy: str | None = None) -> None:
        self.reason = reason
        super().__init__(f"refused by the server: {reason}", "connection_refused",
                         remedy=remedy)


#: The start of the one plain line a server sends when it refuses a connection
REFUSAL_PREFIX = b"!!! "


class ProtocolError(ChatkitError):
    """The peer broke the wire protocol."""

    exit_code = ExitCode.PROTOCOL


class NotFoundError(ChatkitError):
    """Discovery found nothing."""

    exit_code = ExitCode.NOT_FOUND


class NoMatchError(ChatkitError):
    """A query matched nothing (not an error of the query itself)."""

    exit_code = ExitCode.NO_MATCH
