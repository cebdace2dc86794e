"""The chatkit client: `chatkit join`, interactive in a terminal or line-by-line in a pipe.

`run_join` is the one entry point the CLI calls for `chatkit join`, `send_messages`
(`chatkit.client.send`) the one for `chatkit send`. The pieces: `connection` (one JSON-mode
connection; every server frame is checked there, on arrival), `link` (a connection that heals
itself) with its `outbox` (lines on their way), `model` (rooms, members, last ids), `session`
(the facade the UIs use), `lines` (what a typed line is), `render` (styled lines), `completer`
(Tab), `settings` (remembered choices), `app` (the prompt_toolkit UI) and `piped` (no
terminal).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from chatkit.client.connection import Connection
from chatkit.client.passwords import PASSWORD_TRIES, PasswordError, with_password
from chatkit.client.session import ChatSession
from chatkit.errors import ChatkitError, ConfigError, RefusedError
from chatkit.protocol import FrameError, normalize_nick, normalize_room

__all__ = ["run_join", "ChatSession", "NickMissing", "PasswordError"]

NICK_ATTEMPTS = 5


class NickMissing(ConfigError):
    """No nickname to join with. `no_terminal`: there is no terminal to ask on (the caller
    must give one); otherwise the user was asked and gave none."""

    def __init__(self, no_terminal: bool) -> None:
        self.no_terminal = no_terminal
        super().__init__("a nickname is required when stdin is not a terminal" if no_terminal
                         else "no nickname given")


#: Refusals a person fixes by typing another nickname.
NICK_REFUSALS = frozenset({"nick_taken", "bad_nick"})


def _ask_nick(stderr: TextIO) -> str | None:
    """Ask for a nickname on the terminal until a valid one is given (a few tries); None when
    the user cancels (Ctrl-C, Ctrl-D): leaving then is not an error."""
    from prompt_toolkit import prompt

    for _ in range(NICK_ATTEMPTS):
        try:
            answer = prompt("Nickname: ")
        except (EOFError, KeyboardInterrupt):
            return None
        try:
            return normalize_nick(answer)
        except FrameError as exc:
            print(f"{exc.message}", file=stderr)
    raise NickMissing(no_terminal=False)


def _connect(session: ChatSession, password: str | None) -> None:
    session.use_password(password)
    session.connect()


#: Refusals a person fixes by giving the password of the account that owns the nickname.
ACCOUNT_REFUSALS = frozenset({"nick_registered", "bad_login"})


def _with_account(connect: Callable[[], None], session: ChatSession, nick: str,
                  ask: Callable[[str], str | None] | None) -> tuple[str, str] | None:
    """`connect()`, logging in with the password remembered for `nick` on this server
    (`/remember`); when the nickname is a registered account and there is a terminal, ask
    for its password (a few times). Returns the credential the connection logged in with."""
    from chatkit.client.accounts import Credentials

    account = Credentials().get(session.address, nick)
    session.use_account(account)
    for attempt in range(1, PASSWORD_TRIES + 1):
        try:
            connect()
            return account
        except RefusedError as exc:
            if exc.code not in ACCOUNT_REFUSALS or ask is None or attempt == PASSWORD_TRIES:
                raise
            answer = ask(f"{exc}" if exc.code == "bad_login" else
                         f"{nick} is a registered account: its password logs you in")
            if answer is None:
                raise
            account = (nick, answer)
            session.use_account(account)
    raise AssertionError("unreachable")


#: Terminal rows kept free of history on join: the welcome, the joined line, notices, the
#: input line and the toolbar.
SCREEN_MARGIN = 10


def screen_history(rows: int | None = None) -> int:
    """How many history lines fill about one screen of a terminal of `rows` (this one's)."""
    if rows is None:
        import shutil

        rows = shutil.get_terminal_size((80, 24)).lines
    return max(5, rows - SCREEN_MARGIN)


def run_join(host: str, port: int, nick: str | None, room: str, json_output: bool = False,
             *, stdin: TextIO | None = None, stdout: TextIO | None = None,
             stderr: TextIO | None = None, tls: bool = True, insecure: bool = False,
             password: str | None = None, expected_fingerprint: str | None = None,
             ask_password: Callable[[str], str | None] | None = None,
             history: int | None = None) -> int:
    """Join `host:port` as `nick` in `room`; returns the exit status (0 when the user left).

    With a terminal on stdin and stdout (and no `--json`) this runs the interactive UI;
    otherwise it sends stdin lines and prints events (see `chatkit.client.piped`). Failures
    are ChatkitError subclasses with one-line messages: unreachable, refused, protocol, and
    NickMissing when there is no nickname. Without `nick`, in a terminal, the server is
    reached first, then the user is asked, and asked again while the server refuses the
    nickname (taken); cancelling the question returns 0. `ask_password` (given when there is
    a terminal) is asked for the password when the server needs one
    (`connection.with_password`). `history` is how many stored messages a join asks for: by
    default about one screen in a terminal (so the welcome and notices stay in view), the
    server's default without one.
    """
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    interactive = not json_output and stdin.isatty() and stdout.isatty()
    try:
        room = normalize_room(room)
        if nick is not None:
            nick = normalize_nick(nick)
    except FrameError as exc:
        raise ConfigError(exc.message) from None
    if nick is None and not interactive:
        raise NickMissing(no_terminal=True)
    if history is None and interactive:
        history = screen_history()

    def new_session(nick: str) -> ChatSession:
        return ChatSession(host, port, nick, room, tls=tls, insecure=insecure,
                           password=password, expected_fingerprint=expected_fingerprint,
                           history=history)

    if not interactive:
        from chatkit.client.piped import PipedClient

        assert nick is not None
        session = new_session(nick)
        client = PipedClient(session, stdout, stderr, json_output=json_output)
        _with_account(lambda: with_password(lambda given: _connect(session, given), password,
                                            ask_password), session, nick, None)
        return client.run(stdin)

    from chatkit.client.app import ChatApp

    shown: list[str] = []

    def connect(session: ChatSession, app: ChatApp) -> None:
        def attempt(given: str | None) -> None:
            nonlocal password
            password = given  # a later nickname attempt reuses what the user typed
            try:
                _connect(session, given)
            except ChatkitError:
                # Pin notices not shown yet (the UI has not started) are said here, before
                # the error or the password prompt: never pinned unseen.
                for note in app.security_notes():
                    if note not in shown:
                        shown.append(note)
                        print(f"chatkit: {note}", file=stderr, flush=True)
                raise

        account = _with_account(lambda: with_password(attempt, password, ask_password),
                                session, session.nick, ask_password)
        if account is not None:
            app.accounts.logged_in_with(account)

    if nick is not None:
        session = new_session(nick)
        app = ChatApp(session)  # before connect(), so the welcome is not missed
        connect(session, app)
    else:
        # Is anyone there? Before asking a person for anything (a dead server fails now).
        Connection.dial(host, port, tls=tls, insecure=insecure,
                        expected_fingerprint=expected_fingerprint).close()
        for _ in range(NICK_ATTEMPTS):
            if (nick := _ask_nick(stderr)) is None:
                return 0
            session = new_session(nick)
            app = ChatApp(session)
            try:
                connect(session, app)
                break
            except RefusedError as exc:
                if exc.code not in NICK_REFUSALS:
                    raise
                print(str(exc), file=stderr)  # "nickname bob is taken; choose another"
        else:
            raise NickMissing(no_terminal=False)
    try:
        return app.run()
    finally:
        session.quit()
