"""Reading the log without a running server (`chatkit history`): safe while a server runs,
since WAL readers never block the writer."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from chatkit.protocol.names import name_key
from chatkit.store.log import StoredMessage, row_to_message, where_clause
from chatkit.store.schema import StoreError, connect, describe


def read_history(path: str | Path, *, room: str | None = None, since: float | None = None,
                 grep: str | None = None, limit: int | None = None,
                 include_private: bool = True) -> list[StoredMessage]:
    """Read the log without a running server (safe while one runs: WAL readers never block)."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"no message database at {path}", remedy="give_db")
    try:
        conn = connect(str(path), readonly=True)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                raise StoreError(f"{path} is not a chatkit message database")
            where, params = where_clause(
                ("room_key = ?", name_key(room.lstrip("#")) if room is not None else None),
                ("ts >= ?", since),
                ("instr(lower(text), lower(?)) > 0", grep),
                ("kind != ?", None if include_private else "private"))
            sql = f"SELECT * FROM messages{where} ORDER BY id DESC"
            if limit is not None:
                sql += f" LIMIT {int(limit)}"
            rows = [row_to_message(r) for r in conn.execute(sql, params)]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise describe(exc, str(path)) from None
    rows.reverse()
    return rows
