"""Protocol constants: the version, the defaults and every size bound (docs/protocol.md)."""

from __future__ import annotations

from typing import Any

PROTOCOL_VERSION = 1
DEFAULT_PORT = 12345
DEFAULT_ROOM = "lobby"
#: above this many people a room is a crowd (docs/protocol.md, "Crowds")
DEFAULT_CROWD_SIZE = 200

MAX_FRAME = 8192  # bytes, line ending included
MAX_TEXT = 2000  # characters of a message, action, topic or reason
#: bytes of a message, action, topic or reason as a JSON string (quotes excluded): with every
#: other field bounded, a frame that carries one such text, or one topic and one list item,
#: then always fits in MAX_FRAME (4-byte characters make 2,000 characters 8,000 bytes)
MAX_TEXT_BYTES = 7168
MAX_NICK = 24
MAX_ROOM = 32
MAX_REF = 64
#: The latest `ts` a frame may carry: a time every platform's `localtime` can show (year 3000).
MAX_TS = 32_503_680_000.0

#: How long the server waits for a client's first byte before assuming a human (text mode).
SNIFF_SECONDS = 0.5

Frame = dict[str, Any]

