"""Reading the log without a running server (`chatkit history`): safe while a server runs,
since WAL readers never block the writer."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from chatkit.protocol.names import name_key
from chatkit.store.log import StoredMessage, row_to_message, where_clause
from chatkit.store.schema import StoreError, connect, describe

#: Rows fetched from SQLite at a time: memory stays flat however large the log is.
BATCH = 500


def read_history(path: str | Path, *, room: str | None = None, since: float | None = None,
                 grep: str | None = None, limit: int | None = None,
                 include_private: bool = True, kind: str | None = None
                 ) -> Iterator[StoredMessage]:
    """The log's messages, oldest first, read as they are consumed (a cursor, `BATCH` rows at a
    time), never the whole log in memory; with `limit`, the newest `limit` of them, still
    oldest first. Safe while a server runs: WAL readers never block. Raises StoreError (no
    database, not a chatkit one, unreadable) before the first row, or when a later page turns
    out to be corrupt."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"no message database at {path}", remedy="give_db")
    try:
        conn = connect(str(path), readonly=True)
    except sqlite3.Error as exc:
        raise describe(exc, str(path)) from None
    return _rows(conn, path, room=room, since=since, grep=grep, limit=limit,
                 include_private=include_private, kind=kind)


def _rows(conn: sqlite3.Connection, path: Path, *, room: str | None, since: float | None,
          grep: str | None, limit: int | None, include_private: bool, kind: str | None
          ) -> Iterator[StoredMessage]:
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            raise StoreError(f"{path} is not a chatkit message database")
        where, params = where_clause(
            ("room_key = ?", name_key(room.lstrip("#")) if room is not None else None),
            ("ts >= ?", since),
            ("instr(lower(text), lower(?)) > 0", grep),
            ("kind != ?", None if include_private else "private"),
            ("kind = ?", kind))
        if limit is None:
            sql = f"SELECT * FROM messages{where} ORDER BY id"
        else:  # the newest `limit`, then put back in order: SQLite sorts at most `limit` rows
            sql = (f"SELECT * FROM (SELECT * FROM messages{where} ORDER BY id DESC "
                   f"LIMIT {int(limit)}) ORDER BY id")
        cursor = conn.execute(sql, params)
        while batch := cursor.fetchmany(BATCH):
            for row in batch:
                yield row_to_message(row)
    except sqlite3.Error as exc:
        raise describe(exc, str(path)) from None
    finally:
        conn.close()
