"""The interactive client's remembered settings: bell mode and ignored nicks.

Owns: the `client.json` file in `chatkit.paths.config_dir()`: loading it forgivingly (a missing
or damaged file gives the defaults, never a crash) and saving it atomically.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatkit import paths
from chatkit.protocol import name_key

log = logging.getLogger("chatkit.client")

BELL_MODES = ("off", "mention", "pm", "all")
DEFAULT_BELL = "mention"


def settings_path() -> Path:
    return paths.client_settings_file()


def read_settings_file(path: Path) -> dict[str, Any]:
    """The JSON object in `path`; {} when it is missing, unreadable or not an object (a
    damaged file gives the defaults, with a warning, never a crash)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable settings file %s: %s", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def write_settings_file(path: Path, data: dict[str, Any]) -> None:
    """Write `data` to `path` as JSON, atomically: write-then-rename, so a crash never
    leaves half a file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class Settings:
    """Settings the user changes with /bell, /ignore and /unignore."""

    bell: str = DEFAULT_BELL
    ignored: list[str] = field(default_factory=list)
    path: Path | None = field(default=None, repr=False, compare=False)

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        path = path or settings_path()
        settings = cls(path=path)
        data = read_settings_file(path)
        if data.get("bell") in BELL_MODES:
            settings.bell = data["bell"]
        ignored = data.get("ignored")
        if isinstance(ignored, list):
            settings.ignored = [nick for nick in ignored if isinstance(nick, str)]
        return settings

    def save(self) -> None:
        write_settings_file(self.path or settings_path(),
                            {"bell": self.bell, "ignored": self.ignored})

    def ignored_keys(self) -> frozenset[str]:
        return frozenset(name_key(nick) for nick in self.ignored)

    def ignore(self, nick: str) -> bool:
        """Add `nick`; False when it was already ignored."""
        if name_key(nick) in self.ignored_keys():
            return False
        self.ignored.append(nick)
        return True

    def unignore(self, nick: str) -> bool:
        """Remove `nick`; False when it was not ignored."""
        kept = [name for name in self.ignored if name_key(name) != name_key(nick)]
        changed = len(kept) != len(self.ignored)
        self.ignored = kept
        return changed
