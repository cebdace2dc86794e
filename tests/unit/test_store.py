"""The message store on its own: schema, migrations, retention, `--since` parsing (no
sockets)."""

from __future__ import annotations

import os
import sqlite3
import stat

import pytest

from chatkit.cli.history import parse_since
from chatkit.errors import ConfigError
from chatkit.paths import private_file
from chatkit.store import (
    SCHEMA_VERSION,
    MessageStore,
    StoredMessage,
    StoreError,
)
from chatkit.store.schema import MIGRATIONS

# --------------------------------------------------------------------------- the store


def test_new_database_gets_current_schema_in_wal_mode(tmp_path):
    store = MessageStore(tmp_path / "m.db")
    store.close()
    conn = sqlite3.connect(tmp_path / "m.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


@pytest.mark.parametrize("from_version", range(1, SCHEMA_VERSION))
def test_migrates_from_every_earlier_version_keeping_rows(tmp_path, from_version):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for statements in MIGRATIONS[:from_version]:
        for statement in statements:
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {from_version}")
    conn.execute("INSERT INTO messages VALUES (7, 'lobby', 'lobby', 'message', 'ann', NULL, "
                 "'old text', 1000.0)")
    conn.commit()
    conn.close()
    store = MessageStore(path)
    try:
        assert store.last_id() == 7
        assert [m.text for m in store.room_history("lobby", limit=10)] == ["old text"]
    finally:
        store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_database_and_its_wal_files_are_private(tmp_path):
    # it holds everyone's messages: 0600 like the TLS key, whatever the umask
    old = os.umask(0o022)
    try:
        store = MessageStore(tmp_path / "m.db")
        store.append([StoredMessage(1, "lobby", "message", "ann", None, "hi", 1000.0)])
        names = ["m.db", "m.db-wal", "m.db-shm"]
        modes = {n: stat.S_IMODE(os.stat(tmp_path / n).st_mode) for n in names}
        store.close()
    finally:
        os.umask(old)
    assert modes == dict.fromkeys(names, 0o600)


def test_a_world_readable_database_is_made_private(tmp_path):
    MessageStore(tmp_path / "m.db").close()
    os.chmod(tmp_path / "m.db", 0o644)
    MessageStore(tmp_path / "m.db").close()
    assert stat.S_IMODE(os.stat(tmp_path / "m.db").st_mode) == 0o600


def test_a_missing_directory_is_refused_not_created(tmp_path):
    with pytest.raises(ConfigError, match="does not exist") as info:
        MessageStore(tmp_path / "nonexistent" / "dir" / "x.db")
    assert info.value.remedy == "create_dir_or_choose_db"
    assert not (tmp_path / "nonexistent").exists()


def test_private_file_keeps_content_and_tightens(tmp_path):
    path = tmp_path / "history"
    path.write_text("/msg bob secret\n")
    os.chmod(path, 0o644)
    assert private_file(path) == path
    assert path.read_text() == "/msg bob secret\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    fresh = private_file(tmp_path / "new")
    assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o600


def test_upgrading_keeps_each_rooms_latest_topic(tmp_path):
    path = tmp_path / "v2.db"
    conn = sqlite3.connect(path)
    for statements in MIGRATIONS[:2]:
        for statement in statements:
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.executemany("INSERT INTO messages VALUES (?, ?, ?, 'topic', 'ann', NULL, ?, ?)",
                     [(1, "Dev", "dev", "old", 1.0), (2, "dev", "dev", "new", 2.0),
                      (3, "lobby", "lobby", "hello", 3.0), (4, "ops", "ops", None, 4.0)])
    conn.commit()
    conn.close()
    store = MessageStore(path)
    try:
        topics = store.topics()
        assert {key: t.text for key, t in topics.items()} == {"dev": "new", "lobby": "hello"}
        store.append([StoredMessage(5, "Lobby", "topic", "bob", None, "newer", 5.0),
                      StoredMessage(6, "dev", "topic", "bob", None, None, 6.0)])
        assert {key: (t.room, t.text, t.nick) for key, t in store.topics().items()} == {
            "lobby": ("Lobby", "newer", "bob")}
        store.prune(retain_days=None, max_messages=1)
        assert "lobby" in store.topics()  # retention never takes a topic away
    finally:
        store.close()


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this chatkit"):
        MessageStore(path)


def test_corrupt_database_is_a_clear_error(tmp_path):
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="corrupt or not a chatkit database"):
        MessageStore(path)


def test_second_server_on_the_same_database_is_refused(tmp_path):
    first = MessageStore(tmp_path / "m.db")
    try:
        with pytest.raises(StoreError, match="in use by another chatkit serve"):
            MessageStore(tmp_path / "m.db")
    finally:
        first.close()
    MessageStore(tmp_path / "m.db").close()  # free again once the first is closed


def test_retention_keeps_the_newest(tmp_path):
    store = MessageStore(tmp_path / "m.db")
    try:
        now = 2_000_000_000.0
        store.append([StoredMessage(i, "lobby", "message", "a", None, f"m{i}", now - (10 - i)
                                    * 86400) for i in range(1, 11)])
        assert store.prune(retain_days=None, max_messages=6) == 4
        assert [m.id for m in store.room_history("lobby", limit=100)] == [5, 6, 7, 8, 9, 10]
    finally:
        store.close()


def test_parse_since():
    assert parse_since("2h", now=10_000.0) == 10_000.0 - 7200
    assert parse_since("30m", now=10_000.0) == 10_000.0 - 1800
    with pytest.raises(ValueError, match="cannot read"):
        parse_since("yesterday")
