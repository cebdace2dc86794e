"""`chatkit admin`: accounts and bans in the server's database, with the server stopped or
running (its own SQLite connection; WAL lets it read and write beside the server). List
accounts, register one, reset a password, grant or revoke admin, list and lift bans.

Passwords are asked with a hidden prompt (or read from the first line of standard input when
it is not a terminal), never taken as an argument: a command line is visible in `ps`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import datetime

import click

from chatkit import paths
from chatkit.cli.boundary import errors_as_click
from chatkit.errors import ChatkitError, ExitCode
from chatkit.protocol import FrameError, normalize_nick, sanitize_text
from chatkit.store import Records, Sanction

_DB = click.option("--db", "db_path", type=click.Path(dir_okay=False), default=None,
                   help="The server's database [default: the one `chatkit serve` uses].")
#: what a running server needs to see a change made here
_RELOAD = "a running server applies this on SIGHUP (`kill -HUP PID`) or restart"


@dataclass
class _Cluster:
    url: str | None = None


def _open(db_path: str | None) -> Records:
    """The server's database, or with `--cluster` the cluster's shared records in Redis."""
    cluster = click.get_current_context().find_object(_Cluster)
    if cluster is not None and cluster.url:
        if db_path is not None:
            raise click.UsageError("--db and --cluster cannot be combined: a cluster keeps "
                                   "its accounts and bans in Redis")
        return _cluster_records(cluster.url)
    return Records.open(db_path or paths.default_db_file())


def _cluster_records(url: str) -> Records:
    try:
        from chatkit.server.bus.cluster_records import RedisRecords
        from chatkit.server.bus.cluster_redis import RedisLog
    except ImportError as exc:
        if exc.name != "redis":
            raise
        raise ChatkitError("a cluster needs redis-py, which is not installed",
                           remedy="install_cluster") from None
    return RedisRecords(RedisLog(url, "admin"))


def _applied() -> str:
    """When a running server sees a change made here."""
    cluster = click.get_current_context().find_object(_Cluster)
    if cluster is not None and cluster.url:
        return "every node of the cluster applies this at once"
    return _RELOAD


def _ask_password() -> str:
    """A new password: a hidden prompt asked twice, or stdin's first line when piped."""
    from chatkit.server.hub.accounts import check_new_password

    if sys.stdin.isatty():
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True,
                                err=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        return check_new_password(password)
    except FrameError as exc:
        raise click.UsageError(exc.message) from None


def _name(name: str) -> str:
    try:
        return normalize_nick(name)
    except FrameError as exc:
        raise click.BadParameter(exc.message, param_hint="NAME") from None


@click.group()
@click.option("--cluster", envvar="CHATKIT_SERVE_CLUSTER", default=None, metavar="URL",
              help="The Redis of a cluster (`serve --cluster`): its accounts and bans "
                   "instead of one server's database (docs/cluster.md).")
@click.pass_context
def admin(ctx: click.Context, cluster: str | None) -> None:
    """Manage accounts and bans (with the server stopped, or while it runs)."""
    ctx.obj = _Cluster(cluster)


@admin.command("accounts")
@_DB
def accounts(db_path: str | None) -> None:
    """List the accounts."""
    with errors_as_click():
        records = _open(db_path)
        try:
            found = records.accounts()
        finally:
            records.close()
    for account in found:
        created = datetime.fromtimestamp(account.created).strftime("%Y-%m-%d %H:%M")
        click.echo(f"{sanitize_text(account.name):<24} {'admin' if account.admin else '-':<5} "
                   f"registered {created}")
    if not found:
        click.echo("chatkit: no accounts yet", err=True)
        sys.exit(ExitCode.NO_MATCH)


@admin.command("register")
@click.argument("name")
@_DB
def register(name: str, db_path: str | None) -> None:
    """Register account NAME (asks for its password): for `serve --admin NAME`."""
    from chatkit.server.hub.accounts import hash_password

    name = _name(name)
    with errors_as_click():
        records = _open(db_path)
        try:
            if not records.add_account(name, hash_password(_ask_password())):
                raise ChatkitError(f"{name} is registered already")
        finally:
            records.close()
    click.echo(f"chatkit: account {name} registered; {_applied()}")


@admin.command("reset-password")
@click.argument("name")
@_DB
def reset_password(name: str, db_path: str | None) -> None:
    """Give account NAME a new password (asks for it)."""
    from chatkit.server.hub.accounts import hash_password

    name = _name(name)
    with errors_as_click():
        records = _open(db_path)
        try:
            if records.account(name) is None:
                raise ChatkitError(f"no account {name}")
            records.set_secret(name, hash_password(_ask_password()))
        finally:
            records.close()
    click.echo(f"chatkit: new password for {name}; it counts from the next login")


@admin.command("grant")
@click.argument("name")
@_DB
def grant(name: str, db_path: str | None) -> None:
    """Make account NAME a server admin."""
    _set_admin(name, db_path, True)


@admin.command("revoke")
@click.argument("name")
@_DB
def revoke(name: str, db_path: str | None) -> None:
    """Take server admin from account NAME."""
    _set_admin(name, db_path, False)


def _set_admin(name: str, db_path: str | None, admin_: bool) -> None:
    name = _name(name)
    with errors_as_click():
        records = _open(db_path)
        try:
            if not records.set_admin(name, admin_):
                raise ChatkitError(f"no account {name}")
        finally:
            records.close()
    click.echo(f"chatkit: {name} is {'now' if admin_ else 'no longer'} a server admin; "
               "it counts from its next login")


@admin.command("bans")
@click.option("--room", default=None, help="Only this room's (default: every ban and mute).")
@_DB
def bans(room: str | None, db_path: str | None) -> None:
    """List the bans and mutes in force, with their ids."""
    with errors_as_click():
        records = _open(db_path)
        try:
            found = records.sanctions()
        finally:
            records.close()
    if room is not None:
        found = [s for s in found if s.room is not None and
                 s.room.casefold() == room.lstrip("#").casefold()]
    for sanction in found:
        click.echo(format_sanction(sanction))
    if not found:
        click.echo("chatkit: no bans or mutes in force", err=True)
        sys.exit(ExitCode.NO_MATCH)


@admin.command("unban")
@click.argument("ban_id", type=click.IntRange(min=1), metavar="ID")
@_DB
def unban(ban_id: int, db_path: str | None) -> None:
    """Lift the ban or mute ID (from `chatkit admin bans`)."""
    with errors_as_click():
        records = _open(db_path)
        try:
            if not records.remove_sanction(ban_id):
                raise ChatkitError(f"no ban or mute #{ban_id}")
        finally:
            records.close()
    click.echo(f"chatkit: #{ban_id} lifted; {_applied()}")


def format_sanction(s: Sanction) -> str:
    """One line of `chatkit admin bans`."""
    where = f"in {sanitize_text(s.room)}" if s.room else "server-wide"
    until = "until lifted" if s.expires is None else \
        f"until {time.strftime('%Y-%m-%d %H:%M', time.localtime(s.expires))}"
    reason = f" ({sanitize_text(s.reason)})" if s.reason else ""
    return (f"#{s.id} {s.what} {where}: {s.kind} {sanitize_text(s.value)} by "
            f"{sanitize_text(s.by)}, {until}{reason}")
