"""Nicknames and room names: validation, normal form, and the key they are unique under."""

from __future__ import annotations

import re
import unicodedata

from chatkit.protocol.constants import MAX_NICK, MAX_ROOM
from chatkit.protocol.framing import FrameError
from chatkit.protocol.sanitize import sanitize_text

_NAME_REST = re.compile(r"^[\w.\-]*$")

#: Unicode's Default_Ignorable_Code_Point set (DerivedCoreProperties.txt, Unicode 15.1; Python's
#: `unicodedata` does not expose the property): code points a renderer shows as nothing. Most are
#: format characters that `sanitize_text` already drops, but the Hangul fillers (U+115F, U+1160,
#: U+3164, U+FFA0) are letters to `\w`, and the variation selectors are marks: without this
#: list, `"\u3164alice"` is a nickname that looks exactly like `alice`, and `"\u3164\u3164"` an
#: invisible room. Inclusive ranges.
DEFAULT_IGNORABLE: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160),
    (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E),
    (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)

#: Characters outside that set that draw as blank: the Braille blank and the ideographic space.
#: Neither is `\w` today; listed so that a wider name rule cannot let them in.
_BLANK_LOOKING = frozenset({0x2800, 0x3000})


def is_invisible(char: str) -> bool:
    """Whether `char` is a default-ignorable code point or a filler: shown as nothing."""
    code = ord(char)
    return code in _BLANK_LOOKING or any(low <= code <= high for low, high in DEFAULT_IGNORABLE)


#: Alphabets with letters that look like Latin ones (Cyrillic а, Greek ο, Armenian օ, Cherokee
#: Ꭺ, Coptic ⲟ, Lisu ꓮ). A name mixing them is how one poses as another (Cyrillic `аlice` for
#: `alice`), so it is refused; names in one alphabet, and mixes of other scripts (Han with
#: Hiragana or Katakana, for instance), are fine.
_LOOKALIKE_SCRIPTS = frozenset({"LATIN", "CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE", "COPTIC",
                                "LISU"})


def _mixed_lookalike_scripts(name: str) -> str:
    """The look-alike scripts a name's letters come from ("Cyrillic and Latin"), when there is
    more than one; "" otherwise."""
    if name.isascii():
        return ""
    scripts = {script for char in name if char.isalpha()
               if (script := unicodedata.name(char, "").split(" ", 1)[0])
               in _LOOKALIKE_SCRIPTS}
    return " and ".join(script.title() for script in sorted(scripts)) if len(scripts) > 1 else ""


#: A name of these characters only needs no closer look (most names: the join storm checks
#: thousands a second)
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.\-]*")


def _not_allowed(name: str) -> str:
    """What in `name` no name may hold, quoted for a message ("' ' and '!'"); "" if nothing."""
    if _PLAIN_NAME.fullmatch(name):
        return ""
    bad: list[str] = []
    for char in name:
        if not _NAME_REST.match(char) or sanitize_text(char) != char or is_invisible(char):
            visible = char.isprintable() and not is_invisible(char)
            shown = repr(char) if visible else f"U+{ord(char):04X}"
            if shown not in bad:
                bad.append(shown)
    if not bad:
        return ""
    listed = ", ".join(bad[:-1]) + f" and {bad[-1]}" if len(bad) > 1 else bad[0]
    return f"{listed} {'are' if len(bad) > 1 else 'is'} not allowed"


def normalize_nick(nick: str) -> str:
    """Validate a nickname and return its NFKC form, or raise FrameError(bad_nick)."""
    nick = unicodedata.normalize("NFKC", nick.strip())
    if not nick:
        raise FrameError("bad_nick", "nickname is empty")
    if len(nick) > MAX_NICK:
        raise FrameError("bad_nick", f"nickname longer than {MAX_NICK} characters")
    rule = "start with a letter or _, then letters, digits, _ - ."
    if bad := _not_allowed(nick):
        raise FrameError("bad_nick", f"invalid nickname {nick!r}: {bad}; {rule}")
    if not (nick[0].isalpha() or nick[0] == "_"):
        raise FrameError("bad_nick", f"invalid nickname {nick!r}: {rule}")
    if mixed := _mixed_lookalike_scripts(nick):
        raise FrameError("bad_nick", f"nickname {nick!r} mixes {mixed} letters, which look "
                                     "alike: use one alphabet")
    return nick


def normalize_room(room: str) -> str:
    """Validate a room name (a leading '#' is dropped) and return its NFKC form."""
    room = unicodedata.normalize("NFKC", room.strip())
    if room.startswith("#"):
        room = room[1:]
    if not room:
        raise FrameError("bad_room", "room name is empty")
    if len(room) > MAX_ROOM:
        raise FrameError("bad_room", f"room name longer than {MAX_ROOM} characters")
    if bad := _not_allowed(room):
        raise FrameError("bad_room",
                         f"invalid room name {room!r}: {bad}; use letters, digits, _ - .")
    if mixed := _mixed_lookalike_scripts(room):
        raise FrameError("bad_room", f"room name {room!r} mixes {mixed} letters, which look "
                                     "alike: use one alphabet")
    return room


def name_key(name: str) -> str:
    """The key under which nicknames and rooms are unique (case-insensitive)."""
    return name.casefold()

