"""The server password from the client's side: the error that says which it was (none given,
or a wrong one), and asking a person at a terminal for it, a few times, when it is needed."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from chatkit.errors import RefusedError


class PasswordError(RefusedError):
    """The server needs a password: none was given (`missing`), or it was wrong. Worded here,
    by what the client sent, so an older server's "wrong password" for a missing one reads
    right too."""

    def __init__(self, missing: bool) -> None:
        super().__init__("this server needs a password" if missing else "wrong password",
                         "bad_password", remedy="give_password" if missing else None)
        self.missing = missing


#: How often a user at a terminal is asked for the password before giving up.
PASSWORD_TRIES = 3

T = TypeVar("T")


def with_password(connect: Callable[[str | None], T], password: str | None,
                  ask: Callable[[str], str | None] | None) -> T:
    """`connect(password)`; when the server needs a password and `ask` is given (a terminal),
    ask for it with the reason ("this server needs a password", "wrong password") and try
    again, a few times. `ask` returns None when the user gives up."""
    for attempt in range(1, PASSWORD_TRIES + 1):
        try:
            return connect(password)
        except PasswordError as exc:
            if ask is None or attempt == PASSWORD_TRIES:
                raise
            answer = ask(str(exc))
            if answer is None:
                raise
            password = answer
    raise AssertionError("unreachable")  # the loop returns or raises
