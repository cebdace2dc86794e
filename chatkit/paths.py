"""Where chatkit keeps its files: the config, data and state directories, and the name of
every file chatkit keeps in them.

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


# The files chatkit keeps, each named once. Functions, not constants: CHATKIT_HOME is read
# when a file is needed, so tests can point it elsewhere.


def server_cert_file() -> Path:
    """The server's self-signed TLS certificate (made on first start)."""
    return config_dir() / "server-cert.pem"


def server_key_file() -> Path:
    """The server's TLS private key (mode 0600)."""
    return config_dir() / "server-key.pem"


def known_servers_file() -> Path:
    """Pinned server fingerprints, like SSH's known_hosts."""
    return config_dir() / "known_servers.json"


def client_settings_file() -> Path:
    """The interactive client's /bell and /ignore settings."""
    return config_dir() / "client.json"


def credentials_file() -> Path:
    """Account passwords `chatkit join` logs in with by itself, per server, saved only when
    the user says `/remember` (created 0600 by `private_file`; docs/accounts.md)."""
    return config_dir() / "accounts.json"


def gui_settings_file() -> Path:
    """The desktop client's remembered choices: last server and nick, window geometry, font
    size, muted rooms."""
    return config_dir() / "gui.json"


def input_history_file() -> Path:
    """The interactive client's input history (what the user typed, `/msg` text included:
    created 0600 by `private_file`)."""
    return state_dir() / "history"


def private_file(path: Path) -> Path:
    """Create `path` readable and writable by its owner only (or take group and other
    permissions away from an existing one); the file is kept as it is otherwise."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        if os.fstat(descriptor).st_mode & 0o077:
            os.fchmod(descriptor, 0o600)
    finally:
        os.close(descriptor)
    return path


def default_db_file() -> Path:
    """The server's message log when `--db` is not given."""
    return data_dir() / "messages.db"
