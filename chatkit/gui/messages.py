"""A conversation's lines as a Qt model/view: scales to tens of thousands of lines.

Owns: `MessageModel` (one conversation's `ChatLine`s, appended in batches, bounded),
`ConversationView` (the list showing it) and `MessageDelegate` (draws one line with a
`QTextLayout`: plain text with format ranges, word wrapped, continuation lines indented
under the time). Nothing here ever parses markup: a
`<b>` a peer sends is drawn as the four characters it is, because no widget is given text
that could be read as rich text.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPointF,
    QSize,
    Qt,
)
from PySide6.QtGui import (
    QFont,
    QFontMetricsF,
    QPainter,
    QTextCharFormat,
    QTextLayout,
    QTextOption,
)
from PySide6.QtWidgets import (
    QListView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from chatkit.gui.lines import ChatLine
from chatkit.gui.style import char_format, is_dark

#: Lines a conversation keeps (the oldest go first): far above a day of a busy room.
MAX_LINES = 50_000
LINE_ROLE = Qt.ItemDataRole.UserRole + 1

Index = QModelIndex | QPersistentModelIndex


class MessageModel(QAbstractListModel):
    """One conversation's lines. `DisplayRole` is the line's plain text; `LINE_ROLE` the
    `ChatLine` itself (for the delegate)."""

    def __init__(self, parent: QObject | None = None, max_lines: int = MAX_LINES) -> None:
        super().__init__(parent)
        self.lines: list[ChatLine] = []
        self.max_lines = max_lines

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self.lines)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid() or not 0 <= index.row() < len(self.lines):
            return None
        line = self.lines[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return line.plain
        if role == LINE_ROLE:
            return line
        return None

    def append(self, lines: Sequence[ChatLine]) -> None:
        """Add a batch of lines at the end (one insert for the batch), dropping the oldest
        beyond `max_lines`."""
        if not lines:
            return
        lines = list(lines)[-self.max_lines:]
        overflow = len(self.lines) + len(lines) - self.max_lines
        if overflow > 0:
            self.beginRemoveRows(QModelIndex(), 0, overflow - 1)
            del self.lines[:overflow]
            self.endRemoveRows()
        first = len(self.lines)
        self.beginInsertRows(QModelIndex(), first, first + len(lines) - 1)
        self.lines.extend(lines)
        self.endInsertRows()

    def clear(self) -> None:
        self.beginResetModel()
        self.lines.clear()
        self.endResetModel()

    def texts(self) -> list[str]:
        return [line.plain for line in self.lines]


class MessageDelegate(QStyledItemDelegate):
    """Draws a `ChatLine` as formatted plain text; layouts are cached per line and width."""

    PADDING = 2

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layouts: dict[tuple[int, int], tuple[ChatLine, QTextLayout, float]] = {}
        self._formats: dict[tuple[str, bool], QTextCharFormat] = {}

    def clear(self) -> None:
        """Forget cached layouts and formats (font or palette changed)."""
        self._layouts.clear()
        self._formats.clear()

    def text_layout(self, line: ChatLine, font: QFont, width: int, dark: bool
                    ) -> tuple[QTextLayout, float]:
        """The layout `line` is drawn with at `width` pixels, and its height."""
        key = (id(line), width)
        cached = self._layouts.get(key)
        if cached is not None and cached[0] is line:
            return cached[1], cached[2]
        layout = QTextLayout(line.plain, font)
        ranges = []
        start = 0
        for style, text in line.runs:
            fmt_key = (style, dark)
            fmt = self._formats.get(fmt_key)
            if fmt is None:
                fmt = self._formats[fmt_key] = char_format(style, dark)
            rng = QTextLayout.FormatRange()
            rng.start, rng.length, rng.format = start, len(text), fmt
            ranges.append(rng)
            start += len(text)
        layout.setFormats(ranges)
        option = QTextOption()
        option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        layout.setTextOption(option)
        first = line.runs[0][1] if line.runs else ""
        indent = QFontMetricsF(font).horizontalAdvance(first) if first.endswith(" ") else 0.0
        indent = min(indent, width / 3)
        y = 0.0
        layout.beginLayout()
        while True:
            text_line = layout.createLine()
            if not text_line.isValid():
                break
            x = 0.0 if text_line.lineNumber() == 0 else indent
            text_line.setLineWidth(max(10.0, width - x))
            text_line.setPosition(QPointF(x, y))
            y += text_line.height()
        layout.endLayout()
        if len(self._layouts) > 6000:
            self._layouts.clear()
        self._layouts[key] = (line, layout, y)
        return layout, y

    def _width(self, option: QStyleOptionViewItem) -> int:
        view = self.parent()
        if isinstance(view, QWidget) and hasattr(view, "viewport"):
            return max(50, int(view.viewport().width()) - 2 * self.PADDING)
        return max(50, option.rect.width() - 2 * self.PADDING)

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        line = index.data(LINE_ROLE)
        if not isinstance(line, ChatLine):
            return super().sizeHint(option, index)
        width = self._width(option)
        _layout, height = self.text_layout(line, option.font, width, is_dark(option.palette))
        return QSize(width, int(height) + self.PADDING)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        line = index.data(LINE_ROLE)
        if not isinstance(line, ChatLine):
            super().paint(painter, option, index)
            return
        painter.save()
        if option.state & QStyle.StateFlag.State_Selected:
            painter.fillRect(option.rect, option.palette.highlight())
        painter.setPen(option.palette.text().color())
        layout, _height = self.text_layout(line, option.font, self._width(option),
                                       is_dark(option.palette))
        layout.draw(painter, QPointF(option.rect.left() + self.PADDING,
                                     option.rect.top() + self.PADDING / 2))
        painter.restore()


class ConversationView(QListView):
    """The list a conversation is shown in: lines of different heights, laid out in batches
    (a 10,000-line room stays responsive), scrolled by pixel, wrapped, never scrolled
    sideways."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.delegate = MessageDelegate(self)
        self.setItemDelegate(self.delegate)
        self.setUniformItemSizes(False)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(200)
        self.setVerticalScrollMode(QListView.ScrollMode.ScrollPerPixel)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSelectionMode(QListView.SelectionMode.ExtendedSelection)
