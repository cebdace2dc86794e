"""The input line: Up/Down history and Tab completion, as in the terminal client.

Owns: `ChatInput`, a `QLineEdit` that keeps what was sent (Up/Down walk it; what was being
typed is kept) and completes `/commands`, nicks and rooms with Tab using the terminal client's
own completer (`chatkit.client.completer.ChatCompleter`, pure): one candidate is taken at once,
several first complete their common part, then each Tab cycles to the next one.
"""

from __future__ import annotations

from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QLineEdit, QWidget

from chatkit.client.completer import ChatCompleter

HISTORY_LINES = 500


class ChatInput(QLineEdit):
    """`submitted(text)` when Enter is pressed on a non-empty line (which is then cleared)."""

    submitted = Signal(str)

    def __init__(self, completer: ChatCompleter | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.completer_logic = completer
        self.history: list[str] = []
        self._position = 0  # index into history; len(history) is the line being typed
        self._draft = ""
        self._cycle: list[tuple[str, int]] = []  # (text, cursor) of each candidate
        self._cycle_index = 0
        self.setPlaceholderText("Type a message, or /help")
        self.returnPressed.connect(self._submit)
        self.textEdited.connect(self._edited)

    def _submit(self) -> None:
        text = self.text()
        if not text.strip():
            return
        if not self.history or self.history[-1] != text:
            self.history.append(text)
            del self.history[:-HISTORY_LINES]
        self._position = len(self.history)
        self._draft = ""
        self.clear()
        self.submitted.emit(text)

    def _edited(self, _text: str) -> None:
        self._cycle = []

    # ------------------------------------------------------------------ keys

    def event(self, event: QEvent) -> bool:
        # Tab must complete, not move the focus: caught before QWidget's focus handling.
        if event.type() == QEvent.Type.KeyPress and isinstance(event, QKeyEvent) \
                and event.key() == Qt.Key.Key_Tab and not event.modifiers():
            self.complete()
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Up:
            self._walk(-1)
        elif event.key() == Qt.Key.Key_Down:
            self._walk(1)
        else:
            super().keyPressEvent(event)

    def _walk(self, step: int) -> None:
        if self._position == len(self.history):
            self._draft = self.text()
        position = max(0, min(len(self.history), self._position + step))
        if position == self._position:
            return
        self._position = position
        self.setText(self._draft if position == len(self.history) else self.history[position])
        self._cycle = []

    # ------------------------------------------------------------------ completion

    def complete(self) -> None:
        """One Tab press: complete, or go on to the next candidate."""
        if self._cycle:
            self._cycle_index = (self._cycle_index + 1) % len(self._cycle)
            self._apply(*self._cycle[self._cycle_index])
            return
        if self.completer_logic is None:
            return
        text, cursor = self.text(), self.cursorPosition()
        document = Document(text, cursor)
        found = list(self.completer_logic.get_completions(
            document, CompleteEvent(completion_requested=True)))
        if not found:
            return
        before, after = text[:cursor], text[cursor:]
        candidates = []
        for completion in found:
            start = cursor + completion.start_position
            new = before[:start] + completion.text
            candidates.append((new + after, len(new)))
        if len(candidates) == 1:
            self._apply(*candidates[0])
            return
        # the part every candidate shares first (as a shell does), then cycle
        common = _common_prefix([c[0][:c[1]] for c in candidates])
        if len(common) > cursor:
            self._apply(common + after, len(common))
            return
        self._cycle, self._cycle_index = candidates, 0
        self._apply(*candidates[0])

    def _apply(self, text: str, cursor: int) -> None:
        self.setText(text)
        self.setCursorPosition(cursor)

    def candidates(self) -> list[str]:
        """What repeated Tab presses cycle through now (for the status line and tests)."""
        return [text for text, _cursor in self._cycle]


def _common_prefix(texts: list[str]) -> str:
    if not texts:
        return ""
    shortest = min(texts, key=len)
    for index, char in enumerate(shortest):
        if any(text[index].casefold() != char.casefold() for text in texts):
            return shortest[:index]
    return shortest
