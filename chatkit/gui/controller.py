"""Getting connected: from a server (typed or found) to an open main window.

Owns: `Controller`, the steps between choosing a server and chatting, each blocking step on
a thread of its own (`Task`) so the window never freezes: read the certificate the server
presents (nothing sent yet), compare it with the pins `chatkit join` and `chatkit trust` keep
(`chatkit.tls.KnownServers`; for a server found by discovery also the announced fingerprint
and the names it was found under, `KnownNames`), ask about a new server or warn about a
changed one, connect the session (pinning exactly the certificate the user saw: it becomes
the session's expected fingerprint), ask for the password or another nickname when the
server says so, then show the main window. `dialog` is the question on screen, if any.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from chatkit.client import PasswordError
from chatkit.client.connection import Connection
from chatkit.client.session import ChatSession
from chatkit.client.settings import Settings
from chatkit.errors import ChatkitError, RefusedError
from chatkit.gui.bridge import Task
from chatkit.gui.dialogs import (
    ChangedIdentityBox,
    FirstTrustBox,
    error_box,
    nick_dialog,
    password_dialog,
)
from chatkit.gui.options import GuiOptions, Target
from chatkit.gui.settings import GuiSettings
from chatkit.gui.start import StartWindow
from chatkit.gui.window import MainWindow
from chatkit.paths import known_servers_file
from chatkit.protocol import FrameError, normalize_nick
from chatkit.tls import KnownNames, KnownServers, Sighting, TrustError

PASSWORD_TRIES = 3
NICK_REFUSALS = frozenset({"nick_taken", "bad_nick"})


def presented_fingerprint(target: Target, timeout: float = 5.0) -> str | None:
    """The certificate fingerprint `target` presents (a TLS handshake, nothing sent)."""
    conn = Connection.dial(target.host, target.port, timeout, tls=True, insecure=True)
    try:
        return conn.fingerprint
    finally:
        conn.close()


class Controller(QObject):
    """From the start window (or the command line's server) to the main window."""

    connected = Signal()

    def __init__(self, options: GuiOptions, gui_settings: GuiSettings | None = None,
                 settings: Settings | None = None) -> None:
        super().__init__()
        self.options = options
        self.gui_settings = gui_settings or GuiSettings.load()
        self.settings = settings or Settings.load()
        self.known = KnownServers(known_servers_file())
        self.start_window: StartWindow | None = None
        self.window: MainWindow | None = None
        self.dialog: QWidget | None = None
        self.password = options.password
        self.target: Target | None = None
        self.nick = options.nick or self.gui_settings.nick
        self._tasks: set[Task] = set()
        self._tries = 0

    # ------------------------------------------------------------------ entry points

    def start(self) -> None:
        options = self.options
        if options.host is not None and options.nick:
            self.connect_to(Target(options.host, options.port, tls=options.tls), options.nick)
        else:
            self.show_start()

    def show_start(self, error: str = "") -> None:
        if self.start_window is None:
            self.start_window = StartWindow(self.options, self.gui_settings, self.known)
            self.start_window.connect_requested.connect(self.connect_to)
        self.start_window.set_busy(False)
        self.start_window.set_error(error)
        self.start_window.show()
        self.start_window.watch()

    def connect_to(self, target: Target, nick: str) -> None:
        try:
            self.nick = normalize_nick(nick)
        except FrameError as exc:
            self.show_start(exc.message)
            return
        self.target, self._tries = target, 0
        if self.start_window is not None:
            self.start_window.set_busy(True, f"connecting to {target.address}…")
        if not target.tls or self.options.insecure:
            self._open(None)
            return
        self._run(lambda: presented_fingerprint(target), self._check_trust, self._failed,
                  "probe")

    # ------------------------------------------------------------------ trust

    def _check_trust(self, presented: str | None) -> None:
        target = self._target()
        if presented is None:  # no certificate to compare: connect as `chatkit join` would
            self._open(None)
            return
        if target.announced is not None and target.announced != presented:
            self._ask(error_box(self._parent(), "Not connecting", (
                f"{target.address} presented certificate {presented} but discovery "
                f"announced {target.announced}; someone may be impersonating the server.")),
                lambda _box: self.show_start("not connected: the certificate was not the "
                                             "announced one"))
            return
        try:
            if target.name and target.instance:
                KnownNames(self.known).check(self._sighting(presented))
            pinned = self.known.get(target.address)
        except ChatkitError as exc:
            why = str(exc)
            self._ask(error_box(self._parent(), "Not connecting", why),
                      lambda _box: self.show_start(why))
            return
        if pinned is None:
            first = FirstTrustBox(self._parent(), target.address, target.name, presented)
            self._ask(first, lambda box: self._open(presented) if box.trusted()
                      else self.show_start("not connected: the server was not trusted"))
        elif pinned != presented:
            changed = ChangedIdentityBox(self._parent(), target.address, pinned, presented)
            self._ask(changed, lambda box: self._forget_and_open(presented) if box.forget()
                      else self.show_start(f"not connected: the identity of {target.address} "
                                           "changed"))
        else:
            self._open(presented)

    def _forget_and_open(self, presented: str) -> None:
        self.known.forget(self._target().address)
        self._open(presented)

    def _sighting(self, presented: str | None) -> Sighting:
        target = self._target()
        return Sighting(target.name, target.instance, target.address, presented)

    # ------------------------------------------------------------------ the session

    def _open(self, expected: str | None) -> None:
        target, options = self._target(), self.options
        session = ChatSession(target.host, target.port, self.nick, options.room, tls=target.tls,
                              insecure=options.insecure, password=self.password,
                              expected_fingerprint=expected, history=options.history)
        window = MainWindow(session, self.settings, self.gui_settings)
        self._run(session.connect, lambda _r: self._connected(window, expected),
                  lambda exc: self._connect_failed(window, expected, exc), "connect")

    def _connected(self, window: MainWindow, expected: str | None) -> None:
        target = self._target()
        self.window = window
        window.show()
        settings = self.gui_settings
        settings.last_address, settings.last_tls = target.address, target.tls
        settings.last_name = window.session.server_name or target.name
        settings.nick = window.session.nick
        try:
            settings.save()
            if expected is not None and target.name and target.instance:
                KnownNames(self.known).remember(self._sighting(expected))
        except (OSError, ChatkitError):
            pass  # remembering is a convenience; the connection stands
        if self.start_window is not None:
            self.start_window.stop_watching()
            self.start_window.hide()
        self.connected.emit()

    def _connect_failed(self, window: MainWindow, expected: str | None, exc: object) -> None:
        window.session.on_event = lambda frame: None
        window.deleteLater()
        self._tries += 1
        if isinstance(exc, PasswordError) and self._tries <= PASSWORD_TRIES:
            dialog = password_dialog(self._parent(), self._target().address, str(exc))
            self._ask(dialog, lambda d: self._retry_password(d.textValue(), expected)
                      if d.result() else self.show_start(str(exc)))
        elif isinstance(exc, RefusedError) and exc.code in NICK_REFUSALS \
                and self._tries <= PASSWORD_TRIES:
            dialog = nick_dialog(self._parent(), str(exc), self.nick)
            self._ask(dialog, lambda d: self._retry_nick(d.textValue(), expected)
                      if d.result() else self.show_start(str(exc)))
        elif isinstance(exc, TrustError):
            self._ask(error_box(self._parent(), "Not connecting", str(exc)),
                      lambda _box: self.show_start(str(exc)))
        else:
            self._failed(exc)

    def _retry_password(self, password: str, expected: str | None) -> None:
        self.password = password or None
        self._open(expected)

    def _retry_nick(self, nick: str, expected: str | None) -> None:
        try:
            self.nick = normalize_nick(nick)
        except FrameError as exc:
            self.show_start(exc.message)
            return
        self._open(expected)

    def _failed(self, exc: object) -> None:
        self.show_start(f"could not connect: {exc}")

    # ------------------------------------------------------------------ helpers

    def _target(self) -> Target:
        assert self.target is not None
        return self.target

    def _parent(self) -> QWidget | None:
        return self.start_window

    def _ask(self, dialog: Any, then: Callable[[Any], None]) -> None:
        """Show `dialog` (window-modal, no nested loop); `then(dialog)` once it is answered."""
        self.dialog = dialog

        def answered(_result: int) -> None:
            self.dialog = None
            then(dialog)

        dialog.finished.connect(answered)
        dialog.open()

    def _run(self, call: Callable[[], Any], done: Callable[[Any], None],
             failed: Callable[[Any], None], name: str) -> None:
        task = Task(call, name, self)
        self._tasks.add(task)

        def finish(handler: Callable[[Any], None], value: object) -> None:
            self._tasks.discard(task)
            handler(value)

        task.done.connect(lambda value: finish(done, value))
        task.failed.connect(lambda exc: finish(failed, exc))
        task.start()

    def shutdown(self) -> None:
        """Stop discovery, leave the server, wait for the helper threads (tests, exit)."""
        if self.start_window is not None:
            self.start_window.stop_watching()
            self.start_window.close()
        if self.window is not None:
            self.window.close()
        for task in list(self._tasks):
            task.worker.join(5)
