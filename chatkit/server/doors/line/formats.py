"""The line door's two wire formats: JSON lines (programs, the chatkit clients) and readable
text lines (people on nc/telnet). Each is a stateless `WireFormat` the bus encodes for once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chatkit.protocol import encode, encode_with_ref, render_text

#: Events a member caused that an nc user does not get back (its terminal shows what it typed).
_OWN_TEXT_SILENT = frozenset({"message", "private"})


class JsonFormat:
    name = "json"
    description = "chatkit client"

    def encode(self, frame: Mapping[str, Any]) -> bytes:
        return encode(frame)

    def encode_own(self, encoded: bytes, frame: Mapping[str, Any], ref: object, nick: str | None
                   ) -> bytes | None:
        # The sender's echo differs from everyone's copy only by `ref`: spliced in, not
        # serialised again (the fan-out hot path)
        return encoded if ref is None else encode_with_ref(encoded, ref)

    def encode_for(self, frame: Mapping[str, Any], nick: str | None) -> bytes:
        return encode(frame)


class TextFormat:
    name = "text"
    description = "text client (nc/telnet)"

    def encode(self, frame: Mapping[str, Any]) -> bytes:
        return _lines(render_text(frame))

    def encode_own(self, encoded: bytes, frame: Mapping[str, Any], ref: object, nick: str | None
                   ) -> bytes | None:
        if frame["type"] in _OWN_TEXT_SILENT:
            return None
        return _lines(render_text(frame, nick))

    def encode_for(self, frame: Mapping[str, Any], nick: str | None) -> bytes:
        return _lines(render_text(frame, nick))


def _lines(lines: list[str]) -> bytes:
    return "".join(line + "\r\n" for line in lines).encode()


JSON = JsonFormat()
TEXT = TextFormat()
