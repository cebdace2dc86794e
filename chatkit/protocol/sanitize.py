"""Sanitising text: what could control a terminal or disguise text never gets through."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from chatkit.protocol.constants import MAX_TEXT, MAX_TEXT_BYTES, MAX_TS
from chatkit.protocol.framing import FrameError, json_size

# Zero-width and bidirectional formatting characters that can hide or reorder text.
_INVISIBLE = {
    "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u2060", "\ufeff",
    "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
    "\u2066", "\u2067", "\u2068", "\u2069", "\u061c", "\u00ad",
}

# Whole terminal escape sequences (ECMA-48), removed before single characters are filtered, so
# `\x1b[31mRED\x1b[0m` becomes `RED`, not `[31mRED[0m`:
#  - CSI (ESC [ or C1 0x9b): parameter bytes, intermediate bytes, one final byte;
#  - OSC, DCS, SOS, PM, APC (ESC ] P X ^ _ or C1 0x9d 0x90 0x98 0x9e 0x9f): a string up to its
#    terminator (BEL, ESC \\ or C1 ST 0x9c), or to the end of the text when unterminated;
#  - any other escape: ESC, intermediate bytes, one final byte (ESC c, ESC ( B, ESC 7).
_ESCAPE_SEQUENCE = re.compile(
    "(?:\x1b\\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"
    "|(?:\x1b[\\]PX^_]|[\x9d\x90\x98\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\\\|\x9c)?"
    "|\x1b[\x20-\x2f]*[\x30-\x7e]?"
)


def sanitize_text(text: str) -> str:
    """Remove what could control a terminal or disguise text; keep ordinary Unicode.

    Removes whole escape sequences (CSI, OSC and the other string controls, two-character
    escapes), then drops the remaining C0 controls (tab becomes a space), DEL, C1 controls,
    bidirectional overrides and zero-width characters, and every other invisible format
    character (category Cf: tag characters, invisible operators). Printable ASCII returns at
    once.
    """
    if text.isprintable() and text.isascii():
        return text
    text = _ESCAPE_SEQUENCE.sub("", text)
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


def sane_ts(value: object) -> float | None:
    """`value` if it is a time every `localtime` can show (0 to MAX_TS); None otherwise (not a
    number, NaN, negative, too far ahead): what a frame or a log row may hold is not trusted
    to be one, and `time.localtime(-1e20)` raises OverflowError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if 0 <= value <= MAX_TS else None  # NaN compares false too


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
    # At most 4 bytes a character once controls are gone: only long texts need measuring.
    if len(text) * 4 > MAX_TEXT_BYTES and text_bytes(text) > MAX_TEXT_BYTES:
        raise FrameError("text_too_long", f"{what} longer than {MAX_TEXT_BYTES} bytes "
                                          "(wide characters take up to 4 bytes each)")
    return text


def text_bytes(text: str) -> int:
    """Bytes of `text` as a JSON string, quotes excluded (what MAX_TEXT_BYTES bounds)."""
    return json_size(text) - 2


def fit_text(text: str) -> str:
    """`text` cut (ending in "…") so that it is at most MAX_TEXT_BYTES: for what was stored
    before the byte bound existed, so that its frame still fits in MAX_FRAME."""
    if len(text) * 6 <= MAX_TEXT_BYTES or text_bytes(text) <= MAX_TEXT_BYTES:
        return text
    keep = min(len(text), MAX_TEXT_BYTES // 2)
    while keep > 0 and text_bytes(text[:keep]) > MAX_TEXT_BYTES - 3:  # 3 bytes for "…"
        keep -= max(1, keep // 16)  # bounded: keep only shrinks
    return text[:keep] + "\u2026"

