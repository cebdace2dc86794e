"""Accounts in `chatkit join`: `/register`, `/identify`, `/passwd` and `/unregister` ask for the
password with a hidden prompt (never in the input history), the session logs in with it again
on every reconnect (in the `hello`, before anyone else can take the nickname), and `/remember`
saves it for this server so the next `chatkit join` logs in by itself; `/forget` removes it.

Saved credentials live in one JSON file (chatkit.paths.credentials_file, created mode 0600),
by server address and account: only what the user asked to remember, in plain text (a
password the client must send again cannot be hashed; docs/accounts.md says so).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from chatkit import paths
from chatkit.client.session import ChatSession, Refused
from chatkit.protocol import PASSWORD_REQUESTS, Frame, FrameError, name_key, parse_command

log = logging.getLogger("chatkit.client")

#: the client's own account commands (chatkit.client.lines lists them for /help)
REMEMBER, FORGET = "remember", "forget"


class Credentials:
    """The saved passwords: {server address: {account key: [account, password]}}."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.credentials_file()

    def _load(self) -> dict[str, dict[str, list[str]]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, server: str, account: str) -> tuple[str, str] | None:
        entry = self._load().get(server, {}).get(name_key(account))
        if isinstance(entry, list) and len(entry) == 2 and all(isinstance(x, str)
                                                               for x in entry):
            return entry[0], entry[1]
        return None

    def put(self, server: str, account: str, password: str | None) -> None:
        """Save (or with None, remove) the password of `account` on `server`."""
        data = self._load()
        accounts = data.setdefault(server, {})
        if password is None:
            accounts.pop(name_key(account), None)
        else:
            accounts[name_key(account)] = [account, password]
        if not accounts:
            data.pop(server, None)
        paths.private_file(self.path)  # 0600 before anything is written into it
        temporary = self.path.with_suffix(".tmp")
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(temporary, self.path)


class AccountLines:
    """The account commands of the interactive client (see the module docstring)."""

    def __init__(self, session: ChatSession, say: Callable[[str], None],
                 ask: Callable[[str], Awaitable[str | None]],
                 credentials: Credentials | None = None) -> None:
        self.session = session
        self.say = say
        self.ask = ask
        self.credentials = credentials or Credentials()
        self._current: tuple[str, str] | None = None  # what we are logged in with

    def remembered(self, nick: str) -> tuple[str, str] | None:
        return self.credentials.get(self.session.address, nick)

    @staticmethod
    def wants_password(line: str) -> bool:
        """Whether `line` is an account command whose password must be asked first."""
        name = line[1:].partition(" ")[0].lower() if line.startswith("/") else ""
        return name in PASSWORD_REQUESTS

    async def run(self, line: str) -> None:
        """Ask for the password of `/register`, `/identify`... and send the request."""
        try:
            frame = parse_command(line.strip(), self.session.current_room)
        except FrameError as exc:
            self.say(f"!!! {exc.message}")
            return
        kind = frame["type"]
        account = str(frame.get("account") or self.session.nick)
        prompt = {"register": f"New password for {account}: ",
                  "passwd": "New password: "}.get(kind, f"Password for {account}: ")
        password = await self.ask(prompt)
        if not password:
            self.say("cancelled")
            return
        if kind in ("register", "passwd") and await self.ask("Again: ") != password:
            self.say("!!! the two passwords differ; nothing changed")
            return
        frame["password"] = password
        try:
            self.session.send_login(frame)
        except Refused as exc:
            self.say(f"!!! {exc}")

    def on_frame(self, frame: Frame) -> str | None:
        """Every server frame, after the session took the login it confirms (the session
        logs in with it on every reconnect): a hint to show after the frame, or None."""
        if frame.get("type") != "account":
            return None
        account = self.session.account
        if frame.get("event") == "unregistered":
            if self._current is not None:
                self._save_quietly(self._current[0], None)
            self._current = None
            return None
        if account is None or account == self._current:
            return None
        self._current = account
        saved = self.credentials.get(self.session.address, account[0])
        if saved is not None:  # remembered before: keep the file up to date (/passwd)
            if saved != account:
                self._save(account[1])
            return None
        return (f"/remember to log in to {account[0]} by yourself on {self.session.address}"
                " next time (the password is saved in a file only you can read)")

    def logged_in_with(self, account: tuple[str, str]) -> None:
        """The first connection logged in with a remembered or typed credential."""
        self._current = account

    def client_command(self, name: str) -> None:
        """/remember and /forget."""
        if self._current is None:
            self.say("!!! you are not logged in to an account (/identify or /register)")
            return
        self._save(self._current[1] if name == REMEMBER else None)
        if name == REMEMBER:
            self.say(f"remembered: chatkit join logs in to {self._current[0]} on "
                     f"{self.session.address} by itself (/forget to undo)")
        else:
            self.say(f"forgotten: the password of {self._current[0]} is no longer saved")

    def _save(self, password: str | None) -> None:
        assert self._current is not None
        try:
            self.credentials.put(self.session.address, self._current[0], password)
        except OSError as exc:
            self.say(f"!!! not saved: {exc.strerror or exc}")

    def _save_quietly(self, account: str, password: str | None) -> None:
        if self.credentials.get(self.session.address, account) is not None:
            self._save(password)
