"""Sanitising text: what could control a terminal or disguise text never gets through."""

from __future__ import annotations

import unicodedata
from typing import Any

from chatkit.protocol.constants import MAX_TEXT
from chatkit.protocol.framing import FrameError

# Zero-width and bidirectional formatting characters that can hide or reorder text.
_INVISIBLE = {
    "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u2060", "\ufeff",
    "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
    "\u2066", "\u2067", "\u2068", "\u2069", "\u061c", "\u00ad",
}


def sanitize_text(text: str) -> str:
    """Remove what could control a terminal or disguise text; keep ordinary Unicode.

    Drops C0 controls (tab becomes a space, so ESC sequences lose their ESC and become visible
    harmless text), DEL, C1 controls, bidirectional overrides and zero-width characters, and
    every other invisible format character (category Cf: tag characters, invisible operators).
    """
    if text.isprintable() and text.isascii():
        return text
    out = []
    for char in text:
        if char == "\t":
            out.append(" ")
        elif char in _INVISIBLE:
            continue
        elif unicodedata.category(char) in ("Cc", "Cf", "Cs"):
            continue
        else:
            out.append(char)
    return "".join(out)


def sanitize_frame(value: Any) -> Any:
    """A copy of a frame with every string sanitised, however deeply nested."""
    if isinstance(value, str):
        return sanitize_text(value)
    if isinstance(value, dict):
        return {key: sanitize_frame(item) for key, item in value.items()}
    if isinstance(value, list):
        return [sanitize_frame(item) for item in value]
    return value


def clean_text(text: str, what: str = "text", *, allow_empty: bool = False) -> str:
    """Sanitise and bound a message text, raising FrameError when it cannot be sent."""
    text = sanitize_text(text).strip()
    if not text and not allow_empty:
        raise FrameError("empty_text", f"{what} is empty")
    if len(text) > MAX_TEXT:
        raise FrameError("text_too_long", f"{what} longer than {MAX_TEXT} characters")
    return text

