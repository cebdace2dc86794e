"""`chatkit history`: print the message log, with or without a running server: the options,
`--since` parsing, and the line and JSON forms of a stored message."""

from __future__ import annotations

import json
import re
import sys
import time
from datetime import datetime

import click

from chatkit import paths
from chatkit.cli.boundary import errors_as_click
from chatkit.errors import ExitCode
from chatkit.protocol import sanitize_text
from chatkit.protocol.sanitize import sane_ts
from chatkit.store import StoredMessage, read_history

#: the kinds of stored rows (chatkit/store/log.py)
KINDS = ("message", "action", "topic", "private", "moderation")


@click.command()
@click.option("--db", "db_path", type=click.Path(dir_okay=False), default=None,
              help="Message log to read [default: the one `chatkit serve` uses].")
@click.option("--room", default=None, help="Only this room.")
@click.option("--since", default=None, metavar="2h|30m|7d|DATE",
              help="Only messages since this long ago, or since this date/time.")
@click.option("--grep", default=None, metavar="TEXT", help="Only messages containing TEXT.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Only the newest N messages.")
@click.option("--kind", type=click.Choice(KINDS), default=None,
              help="Only this kind (moderation: kicks, bans, mutes, ops and the rest).")
@click.option("--json", "json_output", is_flag=True, help="Print JSON lines.")
def history(db_path: str | None, room: str | None, since: str | None, grep: str | None,
            limit: int | None, kind: str | None, json_output: bool) -> None:
    """Print stored messages, oldest first (works while the server runs, or without it).

    Exit status: 0 printed messages; 8 nothing matched (or nothing stored yet).
    """
    with errors_as_click():
        try:
            since_ts = parse_since(since) if since else None
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--since") from None
        # streamed: one row at a time from a cursor, never the whole log in memory
        rows = read_history(db_path or paths.default_db_file(), room=room, since=since_ts,
                            grep=grep, limit=limit, kind=kind)
        printed = 0
        for row in rows:
            row = clean_row(row)
            click.echo(json.dumps(as_json(row), ensure_ascii=False) if json_output
                       else format_line(row))
            printed += 1
    if not printed:  # its own status, so that a script can tell "nothing" from success
        asked = [f"{flag} {value!r}" for flag, value in
                 (("--room", room), ("--since", since), ("--grep", grep), ("--kind", kind))
                 if value is not None]
        click.echo(f"chatkit: no stored message matches {' '.join(asked)}" if asked
                   else "chatkit: no message stored yet", err=True)
        sys.exit(ExitCode.NO_MATCH)


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


def clean_row(row: StoredMessage) -> StoredMessage:
    """A row with every string sanitised: the database is a file, and what was written into it
    directly (an escape sequence, a bidi override) must not reach the terminal."""
    def clean(value: object) -> str | None:
        return None if value is None else sanitize_text(str(value))
    return StoredMessage(row.id, clean(row.room), row.kind, clean(row.nick) or "",
                         clean(row.target), clean(row.text), row.ts)


def _when(ts: object, form: str) -> str | None:
    """Local time of a stored `ts`; None when it is not a time (`-1e20`, text)."""
    seconds = sane_ts(ts)
    return None if seconds is None else datetime.fromtimestamp(seconds).strftime(form)


def format_line(message: StoredMessage) -> str:
    """One readable line for `chatkit history`."""
    when = _when(message.ts, "%Y-%m-%d %H:%M:%S") or "????-??-?? ??:??:??"
    if message.kind == "action":
        return f"{when} [{message.room}] * {message.nick} {message.text}"
    if message.kind == "topic":
        return f"{when} [{message.room}] *** {message.nick} set the topic: {message.text or ''}"
    if message.kind == "private":
        return f"{when} [pm {message.nick} -> {message.target}] {message.text}"
    if message.kind == "moderation":
        return f"{when} [{message.room or 'server'}] *** {message.text}"
    return f"{when} [{message.room}] <{message.nick}> {message.text}"


def as_json(message: StoredMessage) -> dict[str, object]:
    """One row as `chatkit history --json` prints it."""
    return {"id": message.id, "room": message.room, "kind": message.kind, "nick": message.nick,
            "to": message.target, "text": message.text, "ts": message.ts,
            "time": _when(message.ts, "%Y-%m-%dT%H:%M:%S")}
