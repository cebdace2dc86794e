"""The message log: a SQLite database of room messages, actions and topic changes.

Owns the schema (versioned with `PRAGMA user_version`, migrated step by step), writes in
batches (one transaction per batch, called from the server's publisher thread), reads for
history on join / replay after an id / `chatkit history`, and retention.

Durability: the database runs in WAL mode. With `synchronous=NORMAL` (the default, fsync policy
"normal") a committed transaction survives the server process being killed (SIGKILL included)
but not a power failure or kernel crash; with fsync policy "full" (`synchronous=FULL`) every
committed batch is fsynced and survives those too, at a measured cost (docs/user-guide.md).
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from chatkit.errors import ChatkitError

FSYNC_POLICIES = ("normal", "full")

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
)
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(ChatkitError):
    """The message database cannot be opened, read or written."""


@dataclass(frozen=True)
class StoredMessage:
    id: int
    room: str | None
    kind: str  # message | action | topic | private
    nick: str
    target: str | None  # private messages: the recipient
    text: str | None
    ts: float

    def as_frame(self) -> dict[str, object]:
        """The server frame this row was published as, marked as history."""
        base: dict[str, object]
        if self.kind == "topic":
            base = {"type": "topic", "room": self.room, "text": self.text, "nick": self.nick}
        elif self.kind == "private":
            base = {"type": "private", "from": self.nick, "to": self.target, "text": self.text}
        else:
            base = {"type": "message", "room": self.room, "nick": self.nick, "text": self.text,
                    "action": self.kind == "action"}
        return {**base, "id": self.id, "ts": self.ts, "history": True}

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "room": self.room, "kind": self.kind, "nick": self.nick,
                "to": self.target, "text": self.text, "ts": self.ts,
                "time": datetime.fromtimestamp(self.ts).isoformat(timespec="seconds")}


def _connect(path: str, *, readonly: bool = False) -> sqlite3.Connection:
    if path == ":memory:":
        return sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    uri = Path(path).resolve().as_uri() + ("?mode=ro" if readonly else "")
    return sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None,
                           timeout=10)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to SCHEMA_VERSION; return the version it had before."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
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
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                self._lockfile = _lock_exclusively(Path(self.path + ".lock"), self.path)
            self._conn = _connect(self.path)
            if self.path != ":memory:":
                mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if mode.lower() != "wal":
                    raise StoreError(f"cannot use WAL mode for {self.path} (got {mode})")
            self._conn.execute(
                f"PRAGMA synchronous={'FULL' if fsync == 'full' else 'NORMAL'}")
            migrate(self._conn)
            self._conn.execute("SELECT count(*) FROM messages WHERE id < 0").fetchone()
            # Prove we can write now rather than lose the first message later.
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            self._release()
            raise StoreError(_describe(exc, self.path)) from None
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
            return self._conn.execute("SELECT coalesce(max(id), 0) FROM messages").fetchone()[0]

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
                        [(r.id, r.room, r.room.casefold() if r.room else None, r.kind, r.nick,
                          r.target, r.text, r.ts) for r in rows])
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise StoreError(_describe(exc, self.path)) from None

    def room_history(self, room: str, *, limit: int, after: int | None = None,
                     up_to: int | None = None) -> list[StoredMessage]:
        """Messages of `room` in id order: the last `limit`, or (with `after`) those after it,
        at most `limit`, the oldest first. `up_to` hides ids not yet published."""
        where, params = _where(("room_key = ?", room.casefold()), ("id > ?", after),
                               ("id <= ?", up_to))
        if after is not None:
            sql = f"SELECT * FROM messages{where} ORDER BY id LIMIT ?"
        else:
            sql = (f"SELECT * FROM (SELECT * FROM messages{where} ORDER BY id DESC "
                   "LIMIT ?) ORDER BY id")
        with self._lock:
            return [_row(r) for r in self._conn.execute(sql, [*params, limit])]

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
        raise StoreError(f"message database {db} is in use by another chatkit serve; give this "
                         "server its own with --db PATH, or --no-history") from None
    return handle


def _where(*conditions: tuple[str, object]) -> tuple[str, list[object]]:
    """A WHERE clause of the conditions whose parameter is not None, and the parameters."""
    used = [(sql, value) for sql, value in conditions if value is not None]
    if not used:
        return "", []
    return " WHERE " + " AND ".join(sql for sql, _ in used), [value for _, value in used]


def _row(row: tuple) -> StoredMessage:
    id_, room, _room_key, kind, nick, target, text, ts = row
    return StoredMessage(id_, room, kind, nick, target, text, ts)


def _describe(exc: sqlite3.Error, path: str) -> str:
    text = str(exc)
    if "not a database" in text or "malformed" in text:
        return (f"message database {path} is corrupt or not a chatkit database ({text}); "
                "move it away or choose another with --db")
    if "readonly" in text or "unable to open" in text or "permission" in text.lower():
        return (f"cannot write message database {path} ({text}); check its permissions or "
                "choose another with --db")
    return f"message database {path}: {text}"


# --------------------------------------------------------------------------- reading the log

_SINCE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: float | None = None) -> float:
    """`2h`, `30m`, `7d`, `1w`, or an ISO date/time (local time) -> a Unix timestamp."""
    text = text.strip()
    match = _SINCE.match(text)
    if match:
        return (now if now is not None else time.time()) - float(match.group(1)) * _UNITS[
            match.group(2)]
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ValueError(f"cannot read {text!r} as a time: use e.g. 2h, 30m, 7d or "
                         "2026-11-24 or 2026-11-24T14:00") from None


def read_history(path: str | Path, *, room: str | None = None, since: float | None = None,
                 grep: str | None = None, limit: int | None = None,
                 include_private: bool = True) -> list[StoredMessage]:
    """Read the log without a running server (safe while one runs: WAL readers never block)."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"no message database at {path} (start `chatkit serve` first, or give "
                         "--db PATH)")
    try:
        conn = _connect(str(path), readonly=True)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                raise StoreError(f"{path} is not a chatkit message database")
            where, params = _where(
                ("room_key = ?", room.lstrip("#").casefold() if room is not None else None),
                ("ts >= ?", since),
                ("instr(lower(text), lower(?)) > 0", grep),
                ("kind != ?", None if include_private else "private"))
            sql = f"SELECT * FROM messages{where} ORDER BY id DESC"
            if limit is not None:
                sql += f" LIMIT {int(limit)}"
            rows = [_row(r) for r in conn.execute(sql, params)]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreError(_describe(exc, str(path))) from None
    rows.reverse()
    return rows


def format_line(message: StoredMessage) -> str:
    """One readable line for `chatkit history`."""
    when = datetime.fromtimestamp(message.ts).strftime("%Y-%m-%d %H:%M:%S")
    if message.kind == "action":
        return f"{when} [{message.room}] * {message.nick} {message.text}"
    if message.kind == "topic":
        return f"{when} [{message.room}] *** {message.nick} set the topic: {message.text or ''}"
    if message.kind == "private":
        return f"{when} [pm {message.nick} -> {message.target}] {message.text}"
    return f"{when} [{message.room}] <{message.nick}> {message.text}"


