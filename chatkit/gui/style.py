"""Colours: the terminal renderer's style classes as Qt character formats, for light and dark
palettes.

Owns: the colour of each ANSI colour name the terminal client gives a nick
(`chatkit.client.render.nick_colour`), so a nick has the same hue in both clients; the format
of each style class (timestamps and notices dimmed, replayed history greyed, errors red,
mentions highlighted); and whether the current palette is dark (the system's light/dark
scheme, followed live).
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QFont, QPalette, QTextCharFormat

#: ANSI colour names (prompt_toolkit's) -> (on a light background, on a dark background)
ANSI: dict[str, tuple[str, str]] = {
    "ansigreen": ("#1a7f37", "#4ec96b"),
    "ansiblue": ("#1f5fbf", "#6aa5ff"),
    "ansimagenta": ("#a0309a", "#e07ad8"),
    "ansicyan": ("#0f7c8c", "#4fd0e0"),
    "ansiyellow": ("#8a6d00", "#e0c040"),
    "ansired": ("#c62828", "#ff6b6b"),
    "ansibrightgreen": ("#2e8b57", "#7be495"),
    "ansibrightblue": ("#3b6fd8", "#8fb8ff"),
    "ansibrightmagenta": ("#b0409f", "#f09ae8"),
    "ansibrightcyan": ("#00838f", "#80e8f0"),
    "ansiblack": ("#000000", "#000000"),
}

DIM = ("#767676", "#9a9a9a")
HISTORY = ("#8a8a8a", "#8a8a8a")


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


def colour(name: str, dark: bool) -> QColor:
    """A prompt_toolkit colour name (`ansigreen`, `#d78700`) as a QColor for this palette."""
    pair = ANSI.get(name)
    if pair is not None:
        return QColor(pair[1] if dark else pair[0])
    return QColor(name)


def char_format(style: str, dark: bool) -> QTextCharFormat:
    """The format of one run styled `style` ("class:nick fg:ansigreen", "class:history")."""
    fmt = QTextCharFormat()
    words = style.split()
    classes = {w.removeprefix("class:") for w in words if w.startswith("class:")}
    if classes & {"timestamp", "room"}:
        fmt.setForeground(QColor(DIM[dark]))
    if "notice" in classes:
        fmt.setForeground(QColor(DIM[dark]))
    if "status" in classes:
        fmt.setForeground(colour("ansiyellow", dark))
    if classes & {"pm", "pm.tag"}:
        fmt.setForeground(colour("ansimagenta", dark))
    if "error" in classes:
        fmt.setForeground(colour("ansired", dark))
        fmt.setFontWeight(QFont.Weight.Bold)
    if classes & {"nick", "own", "pm.tag"}:
        fmt.setFontWeight(QFont.Weight.Bold)
    if "action" in classes:
        fmt.setFontItalic(True)
    if "history" in classes:
        fmt.setForeground(QColor(HISTORY[dark]))
    if "mention" in classes:
        fmt.setBackground(QColor("#ffe066" if not dark else "#806600"))
        fmt.setForeground(QColor("#000000" if not dark else "#ffffff"))
    for word in words:
        if word.startswith("fg:"):
            fmt.setForeground(colour(word[3:], dark))
    return fmt
