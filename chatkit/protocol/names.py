"""Nicknames and room names: validation, normal form, and the key they are unique under."""

from __future__ import annotations

import re
import unicodedata

from chatkit.protocol.constants import MAX_NICK, MAX_ROOM
from chatkit.protocol.framing import FrameError
from chatkit.protocol.sanitize import sanitize_text

_NAME_REST = re.compile(r"^[\w.\-]*$")


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


def _not_allowed(name: str) -> str:
    """What in `name` no name may hold, quoted for a message ("' ' and '!'"); "" if nothing."""
    bad: list[str] = []
    for char in name:
        if not _NAME_REST.match(char) or sanitize_text(char) != char:
            shown = repr(char) if char.isprintable() else f"U+{ord(char):04X}"
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

