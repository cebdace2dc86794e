"""Issue 13, item 7: a damaged message database. Before: with a data page overwritten the server
started and the first `/history` reading that page dropped the connection ("malformed"); with
an index page overwritten it started too (or failed later with an internal error). Now a
bounded integrity check at start makes either one line and exit status 1."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from chatkit.store import MessageStore, StoredMessage
from chatkit.store.schema import quick_check

from helpers import chatkit_cmd, cli_env


@pytest.fixture
def sound_db(tmp_path) -> Path:
    path = tmp_path / "sound.db"
    store = MessageStore(path)
    now = time.time()
    store.append([StoredMessage(i, "lobby", "message", "alice", None, f"hello {i} " * 5, now)
                  for i in range(1, 3001)])
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def _overwrite_a_page(db: Path, dest: Path, table: str) -> Path:
    """A copy of `db` with one page of `table` (a table or an index) overwritten."""
    with sqlite3.connect(db) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = [p for (p,) in conn.execute(
            "SELECT pageno FROM dbstat WHERE name = ? ORDER BY pageno", (table,))]
    shutil.copy(db, dest)
    page = pages[len(pages) // 2]
    with open(dest, "r+b") as f:
        f.seek((page - 1) * page_size)
        f.write(b"\xff" * page_size)
    return dest


def _serve(db: Path, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        chatkit_cmd("serve", "--host", "127.0.0.1", "--port", "0", "--no-discovery",
                    "--no-tls", "--db", str(db)),
        text=True, capture_output=True, timeout=30, env=cli_env(str(home)))


@pytest.mark.parametrize("table", ["messages", "messages_room"])
def test_serve_refuses_a_damaged_database_in_one_line(sound_db, tmp_path, table):
    damaged = _overwrite_a_page(sound_db, tmp_path / f"{table}.db", table)
    result = _serve(damaged, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"message database {damaged} is damaged" in lines[0]
    assert ".recover" in lines[0] and "--db" in lines[0]
    assert "internal error" not in result.stderr and not result.stdout


def test_the_integrity_check_is_bounded_in_time(sound_db, caplog):
    caplog.set_level(logging.WARNING, logger="chatkit")
    conn = sqlite3.connect(sound_db)
    try:
        assert quick_check(conn, str(sound_db)) is True
        assert quick_check(conn, str(sound_db), budget=0.0) is False
    finally:
        conn.close()
    assert any("not checked for damage" in r.getMessage() for r in caplog.records)
