"""Where chatkit keeps its files: config, data and state directories.

`CHATKIT_HOME` overrides all of them (one directory with `config/`, `data/`, `state/`), so tests
and portable installs never touch the real home directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "chatkit"


def _override(kind: str) -> Path | None:
    home = os.environ.get("CHATKIT_HOME")
    if not home:
        return None
    path = Path(home).expanduser() / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    """Config: the server's TLS certificate and key, known servers, client settings."""
    return _override("config") or platformdirs.user_config_path(
        APP_NAME, appauthor=False, ensure_exists=True
    )


def data_dir() -> Path:
    """Data: the message database."""
    return _override("data") or platformdirs.user_data_path(
        APP_NAME, appauthor=False, ensure_exists=True
    )


def state_dir() -> Path:
    """State: input history."""
    return _override("state") or platformdirs.user_state_path(
        APP_NAME, appauthor=False, ensure_exists=True
    )
