"""Files that hold what people wrote are readable by their owner only (no sockets)."""

from __future__ import annotations

import os
import stat

from chatkit import paths
from chatkit.client.app import ChatApp


def test_input_history_is_created_private(tmp_path, monkeypatch):
    # the input history holds /msg text: 0600 like the TLS key, whatever the umask
    monkeypatch.setenv("CHATKIT_HOME", str(tmp_path))
    old = os.umask(0o022)
    try:
        history = ChatApp._file_history()
        history.append_string("/msg bob the door code is 1234")
    finally:
        os.umask(old)
    path = paths.input_history_file()
    assert "1234" in path.read_text()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_world_readable_input_history_is_made_private(tmp_path, monkeypatch):
    monkeypatch.setenv("CHATKIT_HOME", str(tmp_path))
    path = paths.input_history_file()
    path.write_text("\n# 2024-01-01\n+hello\n")
    os.chmod(path, 0o644)
    history = ChatApp._file_history()
    assert list(history.load_history_strings()) == ["hello"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
