"""The message log: a SQLite database of room messages, actions, topic changes (and private
messages when the server logs them), written by the server's bus one batch per transaction,
read for history on join, replay after an id, and retention.

Durability: the database runs in WAL mode. With `synchronous=NORMAL` (the default, fsync policy
"normal") a committed transaction survives the server process being killed (SIGKILL included)
but not a power failure or kernel crash; with fsync policy "full" (`synchronous=FULL`) every
committed batch is fsynced and survives those too, at a measured cost (docs/user-guide.md).

Rows are data (`StoredMessage`), not wire frames: the server turns them into frames, the CLI
into lines.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from chatkit.errors import ConfigError
from chatkit.paths import private_file
from chatkit.protocol.names import name_key
from chatkit.store.records import Records
from chatkit.store.schema import StoreError, connect, describe, migrate, quick_check

FSYNC_POLICIES = ("normal", "full")


@dataclass(frozen=True)
class StoredMessage:
    id: int
    room: str | None
    kind: str  # message | action | topic | private | moderation
    nick: str
    target: str | None  # private messages: the recipient
    text: str | None
    ts: float


@dataclass(frozen=True)
class SavedTopic:
    room: str
    text: str
    nick: str
    ts: float


class MessageStore:
    """The server's message log. Writes come from one thread; reads from any."""

    def __init__(self, path: str | Path, *, fsync: str = "normal", log_private: bool = False
                 ) -> None:
        self.path = str(path)
        self.log_private = log_private
        self._lock = threading.Lock()
        self._lockfile: IO[bytes] | None = None
        try:
            if self.path != ":memory:":
                _create_private(Path(self.path))
                self._lockfile = _lock_exclusively(Path(self.path + ".lock"), self.path)
            self._conn = connect(self.path)
            if self.path != ":memory:":
                mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if mode.lower() != "wal":
                    raise StoreError(f"cannot use WAL mode for {self.path} (got {mode})")
            self._conn.execute(
                f"PRAGMA synchronous={'FULL' if fsync == 'full' else 'NORMAL'}")
            # A damaged page found now is a one-line error at start, not a connection
            # dropped later by the first `/history` that reads it.
            quick_check(self._conn, self.path)
            migrate(self._conn)
            self._conn.execute("SELECT count(*) FROM messages WHERE id < 0").fetchone()
            # Prove we can write now rather than lose the first message later.
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("COMMIT")
            #: accounts and moderation, over this connection (writes serialised with the log's)
            self.records = Records(self._conn, self._lock, self.path)
        except sqlite3.DatabaseError as exc:
            self._release()
            raise describe(exc, self.path) from None
        except OSError as exc:
            self._release()
            raise StoreError(f"cannot open message database {self.path}: "
                             f"{exc.strerror or exc}") from None
        except StoreError:
            self._release()
            raise

    def _release(self) -> None:
        if self._lockfile is not None:
            self._lockfile.close()
            self._lockfile = None

    def last_id(self) -> int:
        with self._lock:
            return int(self._conn.execute(
                "SELECT coalesce(max(id), 0) FROM messages").fetchone()[0])

    def append(self, rows: Sequence[StoredMessage]) -> None:
        """Write rows in one transaction. Raises StoreError; then nothing was written."""
        if not rows:
            return
        try:
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    self._conn.executemany(
                        "INSERT INTO messages (id, room, room_key, kind, nick, target, text, ts)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [(r.id, r.room, name_key(r.room) if r.room else None, r.kind, r.nick,
                          r.target, r.text, r.ts) for r in rows])
                    topics = [r for r in rows if r.kind == "topic" and r.room]
                    if topics:
                        self._conn.executemany(
                            "INSERT OR REPLACE INTO topics (room_key, room, text, nick, ts)"
                            " VALUES (?, ?, ?, ?, ?)",
                            [(name_key(r.room or ""), r.room, r.text, r.nick, r.ts)
                             for r in topics])
                    self._conn.execute("COMMIT")
                except BaseException:
                    # A failed COMMIT (disk full) may have rolled back already: a ROLLBACK
                    # then fails with "no transaction is active" and would hide the reason.
                    if self._conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            self._conn.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise describe(exc, self.path) from None

    def room_history(self, room: str, *, limit: int, after: int | None = None,
                     up_to: int | None = None) -> list[StoredMessage]:
        """Messages of `room` in id order: the last `limit`, or (with `after`) those after it,
        at most `limit`, the oldest first. `up_to` hides ids not yet published."""
        where, params = where_clause(("room_key = ?", name_key(room)), ("id > ?", after),
                               ("id <= ?", up_to))
        if after is not None:
            sql = f"SELECT * FROM messages{where} ORDER BY id LIMIT ?"
        else:
            sql = (f"SELECT * FROM (SELECT * FROM messages{where} ORDER BY id DESC "
                   "LIMIT ?) ORDER BY id")
        with self._lock:
            return [row_to_message(r) for r in self._conn.execute(sql, [*params, limit])]

    def topics(self) -> dict[str, SavedTopic]:
        """Each room's current topic by room key (rooms whose topic was cleared are left out),
        as the last topic change stored for it set it; retention never removes these."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT room_key, room, text, nick, ts FROM topics WHERE text IS NOT NULL "
                "AND text != ''").fetchall()
        return {key: SavedTopic(room, text, nick, ts) for key, room, text, nick, ts in rows}

    def prune(self, *, retain_days: float | None, max_messages: int | None,
              batch: int = 5000) -> int:
        """Delete rows beyond the retention limits, a bounded batch at a time."""
        deleted = 0
        with self._lock:
            if retain_days is not None:
                cutoff = time.time() - retain_days * 86400
                deleted += self._conn.execute(
                    "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE ts < ? "
                    "ORDER BY id LIMIT ?)", (cutoff, batch)).rowcount
            if max_messages is not None:
                deleted += self._conn.execute(
                    "DELETE FROM messages WHERE id IN (SELECT id FROM messages ORDER BY id DESC "
                    "LIMIT ? OFFSET ?)", (batch, max_messages)).rowcount
        return deleted

    def close(self) -> None:
        with self._lock:
            self._conn.close()
        self._release()


def _create_private(path: Path) -> None:
    """Create the database file readable by its owner only (it holds everyone's messages),
    and take group and other permissions away from one an older chatkit made world-readable.
    SQLite gives its -wal and -shm files the database file's permissions.

    The directory must exist: a mistyped `--db /nonexistent/dir/x.db` is refused, not
    obeyed by creating directories (the default directory is created by chatkit.paths)."""
    parent = path.parent
    if not parent.exists():
        raise ConfigError(f"the directory of message database {path} does not exist",
                          remedy="create_dir_or_choose_db")
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if name == path or name.exists():
            with contextlib.suppress(PermissionError):  # someone else's file: leave it be
                private_file(name)


def _lock_exclusively(path: Path, db: str) -> IO[bytes]:
    """Hold an exclusive lock for as long as the server runs: two servers appending to one
    log would hand out the same message ids."""
    handle = open(path, "ab")  # noqa: SIM115 - kept open: the lock lives as long as the file
    try:
        import fcntl

        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:  # not POSIX: no advisory locks; the server is POSIX-only anyway
        pass
    except OSError:
        handle.close()
        raise StoreError(f"message database {db} is in use by another chatkit serve",
                         remedy="own_db") from None
    return handle


def where_clause(*conditions: tuple[str, object]) -> tuple[str, list[object]]:
    """A WHERE clause of the conditions whose parameter is not None, and the parameters."""
    used = [(sql, value) for sql, value in conditions if value is not None]
    if not used:
        return "", []
    return " WHERE " + " AND ".join(sql for sql, _ in used), [value for _, value in used]


def row_to_message(row: tuple[Any, ...]) -> StoredMessage:
    id_, room, _room_key, kind, nick, target, text, ts = row
    return StoredMessage(id_, room, kind, nick, target, text, ts)
