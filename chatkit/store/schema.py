"""The message log's schema: tables, migrations (versioned with `PRAGMA user_version`, applied
step by step), opening a connection, and turning SQLite errors into StoreErrors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from chatkit.errors import ChatkitError

#: Each entry upgrades the schema from version N-1 to N; index 0 creates version 1.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE messages (
               id INTEGER PRIMARY KEY,
               room TEXT,
               room_key TEXT,
               kind TEXT NOT NULL CHECK (kind IN ('message', 'action', 'topic', 'private')),
               nick TEXT NOT NULL,
               target TEXT,
               text TEXT,
               ts REAL NOT NULL
           )""",
        "CREATE INDEX messages_room ON messages (room_key, id)",
    ),
    (
        # v2: `chatkit history --since` and retention by age scan by time.
        "CREATE INDEX messages_ts ON messages (ts)",
    ),
    (
        # v3: each room's current topic, kept apart from the log so that retention (which
        # deletes old rows, topic changes among them) never takes a topic away. Filled from
        # the latest topic row of each room when an older database is upgraded.
        """CREATE TABLE topics (
               room_key TEXT PRIMARY KEY,
               room TEXT NOT NULL,
               text TEXT,
               nick TEXT NOT NULL,
               ts REAL NOT NULL
           )""",
        """INSERT INTO topics (room_key, room, text, nick, ts)
               SELECT room_key, room, text, nick, ts FROM messages
               WHERE id IN (SELECT max(id) FROM messages WHERE kind = 'topic'
                            GROUP BY room_key)""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(ChatkitError):
    """The message database cannot be opened, read or written."""


def connect(path: str, *, readonly: bool = False) -> sqlite3.Connection:
    if path == ":memory:":
        return sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    uri = Path(path).resolve().as_uri() + ("?mode=ro" if readonly else "")
    return sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None,
                           timeout=10)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to SCHEMA_VERSION; return the version it had before."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise StoreError(f"the message database has schema version {version}, newer than this "
                         f"chatkit understands ({SCHEMA_VERSION}); upgrade chatkit")
    for target in range(version + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[target - 1]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return version


def describe(exc: sqlite3.Error, path: str) -> StoreError:
    """A StoreError saying what went wrong with the database at `path`."""
    text = str(exc)
    if "not a database" in text or "malformed" in text:
        return StoreError(f"message database {path} is corrupt or not a chatkit database "
                          f"({text})", remedy="move_or_choose_db")
    if "readonly" in text or "unable to open" in text or "permission" in text.lower():
        return StoreError(f"cannot write message database {path} ({text})",
                          remedy="permissions_or_choose_db")
    return StoreError(f"message database {path}: {text}")
