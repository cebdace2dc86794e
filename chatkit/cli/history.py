"""`chatkit history`: print the message log, with or without a running server."""

from __future__ import annotations

import click

from chatkit import paths
from chatkit.cli.boundary import errors_as_click


@click.command()
@click.option("--db", "db_path", type=click.Path(dir_okay=False), default=None,
              help="Message log to read [default: the one `chatkit serve` uses].")
@click.option("--room", default=None, help="Only this room.")
@click.option("--since", default=None, metavar="2h|30m|7d|DATE",
              help="Only messages since this long ago, or since this date/time.")
@click.option("--grep", default=None, metavar="TEXT", help="Only messages containing TEXT.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Only the newest N messages.")
@click.option("--json", "json_output", is_flag=True, help="Print JSON lines.")
def history(db_path: str | None, room: str | None, since: str | None, grep: str | None,
            limit: int | None, json_output: bool) -> None:
    """Print stored messages, oldest first (works while the server runs, or without it)."""
    import json

    from chatkit.store import format_line, parse_since, read_history

    with errors_as_click():
        try:
            since_ts = parse_since(since) if since else None
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--since") from None
        rows = read_history(db_path or paths.default_db_file(), room=room, since=since_ts,
                            grep=grep, limit=limit)
    for row in rows:
        click.echo(json.dumps(row.as_json(), ensure_ascii=False) if json_output
                   else format_line(row))
