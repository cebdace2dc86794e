"""The desktop client's remembered choices: `gui.json` in the config directory.

Owns: the last server (address, name, TLS or not) and nickname, the window geometry, the font
size, muted rooms and whether a mention plays a sound. Loaded forgivingly (a missing or
damaged file gives the defaults) and saved atomically, like the terminal client's settings
(`chatkit.client.settings`, which still holds what both clients share: /bell and /ignore).
No Qt here: the geometry is kept as the base64 text Qt's `saveGeometry` bytes become.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from chatkit import paths
from chatkit.client.settings import read_settings_file, write_settings_file
from chatkit.protocol import name_key

log = logging.getLogger("chatkit.gui")

DEFAULT_FONT_SIZE = 10
MIN_FONT_SIZE, MAX_FONT_SIZE = 6, 40


@dataclass
class GuiSettings:
    """What the desktop client remembers between runs."""

    last_address: str = ""  # "host:port" of the last server connected to
    last_name: str = ""  # its name, as discovery or `welcome` gave it
    last_tls: bool = True
    nick: str = ""
    geometry: str = ""  # QWidget.saveGeometry(), base64
    font_size: int = DEFAULT_FONT_SIZE
    muted: list[str] = field(default_factory=list)  # name_key of rooms that never notify
    sound: bool = False  # a mention also beeps
    path: Path | None = field(default=None, repr=False, compare=False)

    @classmethod
    def load(cls, path: Path | None = None) -> GuiSettings:
        path = path or paths.gui_settings_file()
        settings = cls(path=path)
        data = read_settings_file(path)
        for spec in fields(cls):
            if spec.name == "path" or spec.name not in data:
                continue
            value, default = data[spec.name], getattr(settings, spec.name)
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif isinstance(default, list):
                ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
            else:
                ok = isinstance(value, str)
            if ok:
                setattr(settings, spec.name, value)
        settings.font_size = max(MIN_FONT_SIZE, min(MAX_FONT_SIZE, settings.font_size))
        return settings

    def save(self) -> None:
        write_settings_file(self.path or paths.gui_settings_file(),
                            {k: v for k, v in asdict(self).items() if k != "path"})

    def is_muted(self, room: str) -> bool:
        return name_key(room) in self.muted

    def toggle_mute(self, room: str) -> bool:
        """Mute `room`, or unmute it when it was muted; returns whether it is muted now."""
        key = name_key(room)
        if key in self.muted:
            self.muted.remove(key)
            return False
        self.muted.append(key)
        return True
