"""The message log's schema: tables, migrations (versioned with `PRAGMA user_version`, applied
step by step), opening a connection, and turning SQLite errors into StoreErrors."""

from __future__ import annotations

import logging
import sqlite3
import time
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
    (
        # v4: accounts and moderation (docs/accounts.md). The log gains the kind
        # 'moderation' (who did what to whom, readable with `chatkit history --kind
        # moderation`): SQLite cannot change a CHECK, so the table is rebuilt.
        """CREATE TABLE messages_v4 (
               id INTEGER PRIMARY KEY,
               room TEXT,
               room_key TEXT,
               kind TEXT NOT NULL CHECK (kind IN ('message', 'action', 'topic', 'private',
                                                  'moderation')),
               nick TEXT NOT NULL,
               target TEXT,
               text TEXT,
               ts REAL NOT NULL
           )""",
        "INSERT INTO messages_v4 SELECT * FROM messages",
        "DROP TABLE messages",
        "ALTER TABLE messages_v4 RENAME TO messages",
        "CREATE INDEX messages_room ON messages (room_key, id)",
        "CREATE INDEX messages_ts ON messages (ts)",
        # `secret` is the scrypt string of hub/accounts.py, never the password
        """CREATE TABLE accounts (
               account_key TEXT PRIMARY KEY,
               name TEXT NOT NULL,
               secret TEXT NOT NULL,
               admin INTEGER NOT NULL DEFAULT 0,
               created REAL NOT NULL
           )""",
        # founder, moderated, invite-only, topic lock: a room's settings outlive the room
        """CREATE TABLE room_settings (
               room_key TEXT PRIMARY KEY,
               room TEXT NOT NULL,
               founder TEXT,
               moderated INTEGER NOT NULL DEFAULT 0,
               invite_only INTEGER NOT NULL DEFAULT 0,
               topic_lock INTEGER NOT NULL DEFAULT 0
           )""",
        """CREATE TABLE room_roles (
               room_key TEXT NOT NULL,
               account_key TEXT NOT NULL,
               role TEXT NOT NULL CHECK (role IN ('op', 'voice')),
               PRIMARY KEY (room_key, account_key, role)
           )""",
        # bans and mutes; room_key NULL: server-wide (bans only)
        """CREATE TABLE sanctions (
               id INTEGER PRIMARY KEY,
               what TEXT NOT NULL CHECK (what IN ('ban', 'mute')),
               room_key TEXT,
               room TEXT,
               kind TEXT NOT NULL CHECK (kind IN ('nick', 'account', 'address')),
               value TEXT NOT NULL,
               label TEXT,
               by TEXT NOT NULL,
               reason TEXT,
               created REAL NOT NULL,
               expires REAL
           )""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
#: seconds the integrity check at start may take; a larger database is opened unchecked
QUICK_CHECK_SECONDS = 10.0

log = logging.getLogger("chatkit.store")


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


def quick_check(conn: sqlite3.Connection, path: str,
                budget: float = QUICK_CHECK_SECONDS) -> bool:
    """SQLite's `quick_check` of the database (every page and record readable, indexes in
    shape; not that each index matches its table), within `budget` seconds. Raises StoreError
    naming the first problem found; returns False when the check ran out of time (logged:
    the database is then used unchecked), True when it is sound."""
    deadline = time.monotonic() + budget
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    try:
        rows = conn.execute("PRAGMA quick_check(3)").fetchall()
    except sqlite3.OperationalError as exc:
        if "interrupt" not in str(exc):
            raise
        log.warning("message database %s not checked for damage: the check takes more than "
                    "%g s", path, budget)
        return False
    finally:
        conn.set_progress_handler(None, 0)
    # quick_check's report is lines, under a "*** in database main ***" heading
    problems = [line.strip() for row in rows if row[0] != "ok"
                for line in str(row[0]).splitlines() if line.strip() and "***" not in line]
    if problems:
        raise StoreError(f"message database {path} is damaged ({problems[0]})",
                         remedy="recover_or_choose_db")
    return True


def describe(exc: sqlite3.Error, path: str) -> StoreError:
    """A StoreError saying what went wrong with the database at `path`."""
    text = str(exc)
    if "malformed" in text:
        return StoreError(f"message database {path} is damaged ({text})",
                          remedy="recover_or_choose_db")
    if "not a database" in text:
        return StoreError(f"message database {path} is corrupt or not a chatkit database "
                          f"({text})", remedy="move_or_choose_db")
    if "full" in text:  # SQLITE_FULL: "database or disk is full"
        return StoreError(f"cannot write message database {path}: the disk is full ({text})")
    if "readonly" in text or "unable to open" in text or "permission" in text.lower():
        return StoreError(f"cannot write message database {path} ({text})",
                          remedy="permissions_or_choose_db")
    return StoreError(f"message database {path}: {text}")
