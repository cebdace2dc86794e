"""The chatkit wire protocol, version 1 (docs/protocol.md): the one package that knows it.

Owns the frame types (`events`), framing and size bounds (`framing`), sanitising (`sanitize`),
nickname and room rules (`names`), the command table (`commands`) and text mode for nc/telnet
users (`text`). Nothing here does I/O, and nothing here imports the rest of chatkit: every
other layer stands on it. The names below are re-exported for convenience; each is defined
once, in the module named in its docstring.
"""

from chatkit.protocol.account_commands import PASSWORD_REQUESTS, CommandSpec
from chatkit.protocol.commands import (
    COMMAND_NAMES,
    COMMANDS,
    command_list,
    parse_command,
)
from chatkit.protocol.constants import (
    DEFAULT_PORT,
    DEFAULT_ROOM,
    MAX_FRAME,
    MAX_NICK,
    MAX_REF,
    MAX_ROOM,
    MAX_TEXT,
    MAX_TEXT_BYTES,
    PROTOCOL_VERSION,
    SNIFF_SECONDS,
    Frame,
)
from chatkit.protocol.events import check_server_frame
from chatkit.protocol.framing import (
    FrameError,
    LineSplitter,
    compact_json,
    decode,
    encode,
    encode_with_ref,
    field,
    json_size,
)
from chatkit.protocol.names import name_key, normalize_nick, normalize_room
from chatkit.protocol.sanitize import clean_text, fit_text, sanitize_frame, sanitize_text
from chatkit.protocol.text import TelnetFilter, render_text

__all__ = [
    "COMMANDS", "COMMAND_NAMES", "DEFAULT_PORT", "DEFAULT_ROOM", "MAX_FRAME", "MAX_NICK",
    "MAX_REF", "MAX_ROOM", "MAX_TEXT", "MAX_TEXT_BYTES", "PASSWORD_REQUESTS",
    "PROTOCOL_VERSION", "SNIFF_SECONDS",
    "CommandSpec", "Frame", "FrameError", "LineSplitter", "TelnetFilter", "check_server_frame",
    "clean_text", "command_list", "compact_json", "decode", "encode", "encode_with_ref", "field",
    "fit_text", "json_size", "name_key", "normalize_nick", "normalize_room", "parse_command",
    "render_text",
    "sanitize_frame", "sanitize_text",
]
