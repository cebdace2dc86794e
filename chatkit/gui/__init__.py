"""`chatkit gui`: the desktop client on Qt for Python (PySide6), an optional extra.

The one entry point the CLI calls is `run_gui`; `qt_missing` says (without importing Qt)
whether PySide6 is installed. The pieces: `options` (what to do, where to connect: no Qt),
`lines` (what an event looks like, drawn by the terminal client's renderer), `settings`
(remembered choices), `bridge` (threads to Qt signals), `messages` (the conversation's
model/view), `conversations`, `members`, `inputline`, `commands` (typed lines),
`attention` (notifications), `dialogs`, `start` (servers found on the network), `window`
and `window_events` (the main window), `controller` (trust, password, connecting), `style`
(colours). The session and model underneath are the terminal client's own
(`chatkit.client.session`): one model, two views. Only this package imports PySide6.
"""

from __future__ import annotations

import importlib.util

from chatkit.gui.options import GuiOptions, Target

__all__ = ["GuiOptions", "Target", "qt_missing", "run_gui"]


def qt_missing() -> bool:
    """True when PySide6 (the `gui` extra) is not installed."""
    return importlib.util.find_spec("PySide6") is None


def run_gui(options: GuiOptions, argv: list[str] | None = None) -> int:
    """Run the desktop client until its windows are closed; returns the exit status."""
    import signal

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from chatkit.gui.controller import Controller

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(argv or ["chatkit"])
    app.setApplicationName("chatkit")
    app.setApplicationDisplayName("chatkit")
    app.setDesktopFileName("chatkit")
    controller = Controller(options)
    # Ctrl-C in the terminal that started it, or a SIGTERM, closes the windows and leaves the
    # server politely. Python runs signal handlers only between bytecodes, so a timer wakes
    # the interpreter now and then while Qt's loop runs.
    previous = {sig: signal.signal(sig, lambda _sig, _frame: app.quit())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    wake = QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(200)
    controller.start()
    try:
        status = app.exec()
    finally:
        wake.stop()
        controller.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return int(status)
