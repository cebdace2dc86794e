"""Each batch of the session's events, on the UI thread, turned into what the window shows.

Owns: `EventRouter`: drops what has no line (the reconnect countdown lives in the status
bar), hands a `rooms` reply to an open "Join room…" dialog (pages merged), shows /help with
the client's commands, puts everything else into its conversation, follows joins and parts
(a room you join is shown; one you leave goes), keeps the view at the newest line while the
user has not scrolled up, and refreshes the panels once per batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from chatkit.gui.lines import Destination
from chatkit.protocol import Frame, name_key

if TYPE_CHECKING:
    from chatkit.gui.window import MainWindow

#: Pixels from the bottom within which the view counts as "at the newest line".
FOLLOW_SLACK = 8


class EventRouter(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.rooms_of: dict[str, list[str]] = {}
        self._room_pages: list[dict[str, object]] = []
        self.follow = True
        self.batches = 0  # batches shown (the burst test counts UI updates with it)

    def watch_scrolling(self) -> None:
        bar = self.window.view.verticalScrollBar()
        bar.valueChanged.connect(self._scrolled)
        bar.rangeChanged.connect(self._range)

    def _scrolled(self, value: int) -> None:
        bar = self.window.view.verticalScrollBar()
        self.follow = value >= bar.maximum() - FOLLOW_SLACK

    def _range(self, _low: int, high: int) -> None:
        if self.follow:
            self.window.view.verticalScrollBar().setValue(high)

    def batch(self, frames: list[Frame]) -> None:
        window = self.window
        self.batches += 1
        segment: list[Frame] = []
        for frame in frames:
            kind = frame.get("type")
            if kind == "status" and frame.get("transient"):
                continue
            if kind == "rooms" and self._to_join_dialog(frame):
                continue
            if kind == "help":
                self._show(segment)
                segment = []
                window.handler.show_help()
                continue
            segment.append(frame)
        self._show(segment)
        window.refresh()

    def _show(self, frames: list[Frame]) -> None:
        if not frames:
            return
        window = self.window
        window.conversations.show(frames, self.rooms_of)
        me = name_key(window.session.nick)
        for frame in frames:
            kind = frame.get("type")
            if kind == "joined" and not frame.get("page"):
                window.select(Destination(str(frame["room"])).key)
            elif kind == "part" and name_key(str(frame.get("nick"))) == me:
                window.conversations.remove(Destination(str(frame["room"])).key)
                if window.session.current_room:
                    window.select(Destination(window.session.current_room).key)
        self.rooms_of = window.rooms_of()

    def _to_join_dialog(self, frame: Frame) -> bool:
        dialog = self.window.join_dialog
        if dialog is None or not dialog.isVisible():
            return False
        rooms = [r for r in frame.get("rooms", []) if isinstance(r, dict)]
        self._room_pages = [*self._room_pages, *rooms] if frame.get("page") else rooms
        if not frame.get("more"):
            dialog.set_rooms(self._room_pages)
        return True
