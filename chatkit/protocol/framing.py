"""Framing: one JSON object per line. Encoding (once per frame, shared by every recipient),
decoding with validation (a malformed frame is rejected here, once), typed field access, and
splitting a byte stream into bounded lines."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from chatkit.protocol.constants import MAX_FRAME, MAX_REF, Frame


class FrameError(ValueError):
    """A frame or line that breaks the protocol; `code` is the wire error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --------------------------------------------------------------------------- encoding

# Built once: json.dumps with options builds a new encoder per call, a cost on the fan-out path.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# JSONEncoder.encode also builds the C encoder on every call (a third of its time for a chat
# message); this is that same C encoder, made once. Our frames are trees we build ourselves,
# so the cycle check it would skip (`markers=None`) cannot matter. Absent C accelerations,
# the plain encoder does the job.
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_C_ENCODE = None if _c_make_encoder is None else _c_make_encoder(
    None, _ENCODER.default, json.encoder.encode_basestring, None, ":", ",", False, False, True)


def _dumps(value: object) -> str:
    return _ENCODER.encode(value) if _C_ENCODE is None else "".join(_C_ENCODE(value, 0))


def encode(frame: Mapping[str, Any]) -> bytes:
    """One frame as one UTF-8 JSON line. Non-ASCII stays readable (`ensure_ascii=False`)."""
    return (_dumps(frame) + "\n").encode()


def compact_json(value: object) -> str:
    """`value` as compact JSON text, non-ASCII kept (what `encode` puts on a line)."""
    return _dumps(value)


def json_size(value: object) -> int:
    """Bytes `value` takes in an encoded frame (a string's quotes included)."""
    return len(_dumps(value).encode())


def encode_with_ref(encoded: bytes, ref: object) -> bytes:
    """`encode({**frame, "ref": ref})`, given `encoded = encode(frame)` of a frame without `ref`.

    A sender's echo differs from everyone else's copy only by `ref`, which comes last in the
    object; splicing it in spares serialising every message twice (the fan-out hot path).
    """
    tail = b"%d" % ref if type(ref) is int else _ENCODER.encode(ref).encode()
    return b'%s,"ref":%s}\n' % (encoded[:-2], tail)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(value: object) -> bool:
    pending = [value]  # a loop, not recursion: whatever depth json.loads accepted is fine
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def decode(line: bytes | str) -> Frame:
    """Parse one JSON line into a frame with a string `type`, or raise FrameError."""
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError("bad_utf8", "frame is not valid UTF-8") from None
    try:
        frame = json.loads(line)
    except (ValueError, RecursionError):
        raise FrameError("bad_frame", "frame is not valid JSON") from None
    if not isinstance(frame, dict):
        raise FrameError("bad_frame", "frame must be a JSON object")
    # A lone surrogate can only come from a `\ud800`-style escape (the line itself was strict
    # UTF-8), so only frames with escapes are searched. Such a string is not text: it cannot
    # be encoded, stored or compared, wherever it went next.
    if "\\u" in line and _has_lone_surrogate(frame):
        raise FrameError("bad_frame", "frame holds an unpaired surrogate escape (\\ud800-"
                                      "\\udfff), which is not text")
    if not isinstance(frame.get("type"), str):
        raise FrameError("bad_frame", "frame has no string field 'type'")
    ref = frame.get("ref")
    if ref is not None and not (
        (isinstance(ref, str) and len(ref) <= MAX_REF)
        or (isinstance(ref, int) and not isinstance(ref, bool))
    ):
        raise FrameError("bad_frame", f"'ref' must be a string of at most {MAX_REF} characters "
                                      "or an integer")
    return frame


def field(frame: Frame, name: str, kind: type, *, required: bool = True, default: Any = None
          ) -> Any:
    """Fetch a typed field of a client frame, or raise FrameError(bad_frame)."""
    value = frame.get(name)
    if value is None:
        if required:
            raise FrameError("bad_frame", f"'{frame.get('type')}' frame needs field '{name}'")
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise FrameError("bad_frame", f"field '{name}' must be {kind.__name__}")
    if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:  # SQLite's range
        raise FrameError("bad_frame", f"field '{name}' is out of range")
    return value


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


# --------------------------------------------------------------------------- byte streams


class LineSplitter:
    """Split a byte stream into lines bounded by MAX_FRAME.

    LF, CR and CRLF all end a line (so an empty line may appear between CR and LF; callers skip
    empty lines). NUL bytes are dropped. A line longer than the limit is reported once as
    `FrameError("frame_too_long")` in the output and discarded up to its end.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buffer = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> Iterator[bytes | FrameError]:
        """Yield each complete line (without its ending) or an error for an oversized one."""
        if b"\0" in data:
            data = data.replace(b"\0", b"")
        self._buffer += data
        if b"\n" in data and b"\r" not in data and not self._discarding:
            # The common case (a JSON client sending LF-ended lines), split in one call; the
            # buffer never holds a CR here: the loop below ends a line at every CR it sees.
            *lines, rest = bytes(self._buffer).split(b"\n")
            self._buffer = bytearray(rest)
            for line in lines:
                yield _too_long(self.max_frame) if len(line) + 1 > self.max_frame else line
        while True:
            end = _find_line_end(self._buffer)
            if end < 0:
                if len(self._buffer) >= self.max_frame:
                    if not self._discarding:
                        yield _too_long(self.max_frame)
                    self._discarding = True
                    self._buffer.clear()
                return
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if self._discarding:
                self._discarding = False
                continue
            if end + 1 > self.max_frame:
                yield _too_long(self.max_frame)
                continue
            yield line


def _find_line_end(buffer: bytearray) -> int:
    lf = buffer.find(b"\n")
    cr = buffer.find(b"\r", 0, lf if lf >= 0 else len(buffer))
    return cr if cr >= 0 else lf


def _too_long(limit: int) -> FrameError:
    return FrameError("frame_too_long", f"line longer than {limit} bytes was discarded")

