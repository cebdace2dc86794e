"""Accounts and moderation as the database keeps them (schema v4, chatkit/store/schema.py):
accounts (name, scrypt secret, admin flag), each room's settings (founder, moderated,
invite-only, topic lock), room roles (op, voice) and sanctions (bans and mutes, in a room or
server-wide, by nick, account or address, maybe with an end).

`Records` works over one SQLite connection: the server's (MessageStore.records, its writes
serialised with the message log's by the store's lock) or the one `chatkit admin` opens on
the same file while the server runs (WAL: readers never block the writer; a writer waits up
to the connection's timeout). Rows, no wording: the hub decides what they mean, the CLI how
they read. The secret is a string this module stores and returns, never a password.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from chatkit.protocol.names import name_key
from chatkit.store.schema import StoreError, connect, describe, migrate


@dataclass(frozen=True)
class Account:
    name: str
    secret: str
    admin: bool
    created: float


@dataclass(frozen=True)
class RoomSettings:
    room: str
    founder: str | None  # an account key
    moderated: bool = False
    invite_only: bool = False
    topic_lock: bool = False


@dataclass(frozen=True)
class Sanction:
    id: int
    what: str  # ban | mute
    room: str | None  # None: server-wide
    kind: str  # nick | account | address
    value: str  # a name key, or an address (group)
    label: str | None  # the name key it was given to (`/ban mallory` also bans an address)
    by: str
    reason: str | None
    created: float
    expires: float | None  # None: until lifted

    def active(self, now: float) -> bool:
        return self.expires is None or self.expires > now


class Records:
    """Read and write the account and moderation tables. Thread-safe (one lock per
    connection); every method raises StoreError for a database problem."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.Lock, path: str) -> None:
        self._conn = conn
        self._lock = lock
        self.path = path

    @classmethod
    def open(cls, path: str | Path) -> Records:
        """A connection of its own to a database on disk (`chatkit admin`), upgraded to the
        current schema; safe while a server runs."""
        path = Path(path)
        if not path.exists():
            raise StoreError(f"no message database at {path}", remedy="give_db")
        try:
            conn = connect(str(path))
            conn.execute("PRAGMA journal_mode=WAL")
            migrate(conn)
        except sqlite3.Error as exc:
            raise describe(exc, str(path)) from None
        return cls(conn, threading.Lock(), str(path))

    @classmethod
    def memory(cls) -> Records:
        """Records that live as long as the process (a server without a database)."""
        conn = connect(":memory:")
        migrate(conn)
        return cls(conn, threading.Lock(), ":memory:")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        try:
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                    self._conn.execute("COMMIT")
                except BaseException:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise describe(exc, self.path) from None

    def _read(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        try:
            with self._lock:
                return list(self._conn.execute(sql, params).fetchall())
        except sqlite3.Error as exc:
            raise describe(exc, self.path) from None

    # ------------------------------------------------------------------ accounts

    def account(self, name: str) -> Account | None:
        rows = self._read("SELECT name, secret, admin, created FROM accounts "
                          "WHERE account_key = ?", (name_key(name),))
        if not rows:
            return None
        row_name, secret, admin, created = rows[0]
        return Account(str(row_name), str(secret), bool(admin), float(str(created)))

    def accounts(self) -> list[Account]:
        return [Account(str(n), str(s), bool(a), float(str(c))) for n, s, a, c in self._read(
            "SELECT name, secret, admin, created FROM accounts ORDER BY account_key")]

    def add_account(self, name: str, secret: str) -> bool:
        """False when the name is registered already."""
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO accounts (account_key, name, secret, admin, created) "
                "VALUES (?, ?, ?, 0, ?)", (name_key(name), name, secret, time.time()))
            return cursor.rowcount == 1

    def set_secret(self, name: str, secret: str) -> bool:
        with self._write() as conn:
            return conn.execute("UPDATE accounts SET secret = ? WHERE account_key = ?",
                                (secret, name_key(name))).rowcount == 1

    def set_admin(self, name: str, admin: bool) -> bool:
        with self._write() as conn:
            return conn.execute("UPDATE accounts SET admin = ? WHERE account_key = ?",
                                (int(admin), name_key(name))).rowcount == 1

    def remove_account(self, name: str) -> bool:
        """The account and its room roles go; rooms it founded have no founder any more."""
        key = name_key(name)
        with self._write() as conn:
            conn.execute("DELETE FROM room_roles WHERE account_key = ?", (key,))
            conn.execute("UPDATE room_settings SET founder = NULL WHERE founder = ?", (key,))
            return conn.execute("DELETE FROM accounts WHERE account_key = ?",
                                (key,)).rowcount == 1

    # ------------------------------------------------------------------ rooms

    def room_settings(self) -> dict[str, RoomSettings]:
        return {str(key): RoomSettings(str(room), None if founder is None else str(founder),
                                       bool(mod), bool(inv), bool(lock))
                for key, room, founder, mod, inv, lock in self._read(
                    "SELECT room_key, room, founder, moderated, invite_only, topic_lock "
                    "FROM room_settings")}

    def save_room(self, settings: RoomSettings) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO room_settings (room_key, room, founder, moderated, "
                "invite_only, topic_lock) VALUES (?, ?, ?, ?, ?, ?)",
                (name_key(settings.room), settings.room, settings.founder,
                 int(settings.moderated), int(settings.invite_only),
                 int(settings.topic_lock)))

    def roles(self) -> list[tuple[str, str, str]]:
        """(room key, account key, role) for every role given."""
        return [(str(r), str(a), str(role)) for r, a, role in self._read(
            "SELECT room_key, account_key, role FROM room_roles")]

    def set_role(self, room: str, account: str, role: str, given: bool) -> None:
        with self._write() as conn:
            if given:
                conn.execute("INSERT OR IGNORE INTO room_roles (room_key, account_key, role) "
                             "VALUES (?, ?, ?)", (name_key(room), name_key(account), role))
            else:
                conn.execute("DELETE FROM room_roles WHERE room_key = ? AND account_key = ? "
                             "AND role = ?", (name_key(room), name_key(account), role))

    # ------------------------------------------------------------------ bans and mutes

    def sanctions(self, now: float | None = None) -> list[Sanction]:
        """Every ban and mute still in force (expired ones are left out), oldest first."""
        now = time.time() if now is None else now
        return [Sanction(int(str(i)), str(w), None if room is None else str(room), str(k),
                         str(v), None if lab is None else str(lab), str(b),
                         None if r is None else str(r), float(str(c)),
                         None if e is None else float(str(e)))
                for i, w, room, k, v, lab, b, r, c, e in self._read(
                    "SELECT id, what, room, kind, value, label, by, reason, created, expires "
                    "FROM sanctions WHERE expires IS NULL OR expires > ? ORDER BY id",
                    (now,))]

    def last_sanction_id(self) -> int:
        return int(str(self._read("SELECT coalesce(max(id), 0) FROM sanctions")[0][0]))

    def reserve_sanction_id(self, proposed: int) -> int:
        """The id a new ban or mute gets: `proposed` (the next after every id in use) here;
        a store several servers share hands out its own."""
        return proposed

    def add_sanction(self, s: Sanction) -> None:
        """Store a ban or mute under its id; it replaces one of the same target."""
        room_key = name_key(s.room) if s.room is not None else None
        with self._write() as conn:
            conn.execute("DELETE FROM sanctions WHERE what = ? AND room_key IS ? AND kind = ? "
                         "AND value = ?", (s.what, room_key, s.kind, s.value))
            conn.execute(
                "INSERT OR REPLACE INTO sanctions (id, what, room_key, room, kind, value, "
                "label, by, reason, created, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (s.id, s.what, room_key, s.room, s.kind, s.value, s.label, s.by, s.reason,
                 s.created, s.expires))

    def remove_sanction(self, id_: int) -> bool:
        with self._write() as conn:
            return conn.execute("DELETE FROM sanctions WHERE id = ?", (id_,)).rowcount == 1
