"""Options shared by several commands, each declared once, and the discovery step of the
commands that connect as a client (including which flag fixes a discovery error)."""

from __future__ import annotations

import contextlib
import io
import os
import stat
from collections.abc import Callable, Iterator
from typing import TextIO

import click
from click.shell_completion import CompletionItem

from chatkit.errors import ConfigError, NotFoundError
from chatkit.net.addresses import parse_address
from chatkit.protocol import DEFAULT_PORT, DEFAULT_ROOM


def chat_target_options(command: Callable[..., None]) -> Callable[..., None]:
    """Where a chatting client goes: [HOST[:PORT]], --port, --nick, --room (join, gui)."""
    command = click.option("--room", default=DEFAULT_ROOM, show_default=True,
                           help="Room to join first.")(command)
    command = click.option("--nick", envvar="CHATKIT_NICK",
                           help="Your nickname (or set CHATKIT_NICK).")(command)
    command = click.option("--port", type=click.IntRange(1, 65535), default=None,
                           help=f"Server port [default: {DEFAULT_PORT}].")(command)
    return click.argument("address", required=False, metavar="[HOST[:PORT]]")(command)


def client_security_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options every command that connects as a client shares: --no-tls, --insecure,
    --password, --password-file (read them with `client_password`)."""
    command = click.option("--password-file", type=click.File("r"), default=None,
                           help="Read the server password from the first line of this file.",
                           )(command)
    command = click.option("--password", envvar="CHATKIT_PASSWORD", default=None,
                           help="Server password (prefer CHATKIT_PASSWORD or --password-file: "
                                "a command line is visible in `ps`; asked for in a terminal)."
                           )(command)
    command = click.option("--insecure", is_flag=True,
                           help="Encrypt, but do not check the server's pinned certificate.",
                           )(command)
    command = click.option("--no-tls", is_flag=True,
                           help="Connect without encryption (servers run with --no-tls).",
                           )(command)
    return command


def warn_exposed_password(password_file: TextIO | None) -> None:
    """One line on stderr when the password is where others can read it: on the command line
    (visible in `ps`), or in a --password-file other users may read."""
    ctx = click.get_current_context(silent=True)
    source = ctx.get_parameter_source("password") if ctx is not None else None
    if source == click.core.ParameterSource.COMMANDLINE:
        click.echo("chatkit: warning: --password on the command line is visible to other "
                   "users (ps); prefer CHATKIT_PASSWORD or --password-file", err=True)
    if password_file is not None:
        try:
            status = os.fstat(password_file.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):
            return
        if stat.S_ISREG(status.st_mode) and status.st_mode & 0o004:
            click.echo(f"chatkit: warning: --password-file {password_file.name} is readable "
                       f"by every user (mode {status.st_mode & 0o777:04o}); run `chmod 600 "
                       f"{password_file.name}`", err=True)


def client_password(password: str | None, password_file: TextIO | None) -> str | None:
    """The password given by --password-file (its first line, as `chatkit serve` reads it),
    else by --password or CHATKIT_PASSWORD (warning when it is exposed)."""
    warn_exposed_password(password_file)
    if password_file is not None:
        password = password_file.readline().rstrip("\r\n")
        if not password:
            raise ConfigError(f"--password-file {password_file.name}: the first line is empty")
    return password


def terminal_password(can_ask: bool) -> Callable[[str], str | None] | None:
    """How a client asks for the password when the server needs one: a hidden prompt on the
    terminal (None without one: the error says which option gives it)."""
    if not can_ask:
        return None

    def ask(reason: str) -> str | None:
        click.echo(f"chatkit: {reason}", err=True)
        try:
            answer = click.prompt("Password", hide_input=True, default="", show_default=False,
                                  err=True)
        except click.Abort:  # Ctrl-C / Ctrl-D at the prompt: give up with the server's reason
            click.echo("", err=True)
            return None
        return str(answer) or None

    return ask


def complete_server_names(ctx: click.Context, param: click.Parameter, incomplete: str
                           ) -> list[CompletionItem]:
    from chatkit.discovery import server_names

    # Probe only where the command line says (--broadcast), as the command itself would.
    port = ctx.params.get("discovery_port") or DEFAULT_PORT
    broadcast = list(ctx.params.get("broadcast") or ()) or None
    return [CompletionItem(name)
            for name in server_names(broadcast=broadcast, discovery_port=port)
            if name.casefold().startswith(incomplete.casefold())]


def discovery_client_options(command: Callable[..., None]) -> Callable[..., None]:
    """Options of commands that find their server by discovery when no host is given."""
    command = click.option("--discovery-port", default=DEFAULT_PORT, show_default=True,
                           type=click.IntRange(1, 65535),
                           help="UDP port for discovery.")(command)
    command = click.option("--broadcast", multiple=True, metavar="ADDR",
                           help="Discover by probing ADDR (repeatable) instead of every "
                                "interface's broadcast address.")(command)
    command = click.option("--server", "server_name", default=None, metavar="NAME",
                           shell_complete=complete_server_names,
                           help="Without a host: the discovered server with this name.")(command)
    return command


@contextlib.contextmanager
def discovery_hints() -> Iterator[None]:
    """Discovery errors with the flag or command that helps: a bad probe target is a bad
    `--broadcast`; "nothing found" points to `chatkit discover --diagnose`."""
    from chatkit.cli.discover_output import NOTHING_FOUND_HINT
    from chatkit.discovery import TargetError

    try:
        yield
    except TargetError as exc:
        raise ConfigError(f"--broadcast {exc.target!r} {exc.reason}") from None
    except NotFoundError as exc:
        raise NotFoundError(f"{exc}; {NOTHING_FOUND_HINT}") from None


class ServerNumber(click.ParamType[int]):
    """The chooser's answer: a number of the list shown, or a server's name or address when
    that names exactly one of them; re-asked in plain words otherwise (never click's
    "'vm' is not a valid integer range")."""

    name = "number"

    def __init__(self, count: int, names: list[str] | None = None,
                 addresses: list[str] | None = None) -> None:
        self.count = count
        self.names = names or []
        self.addresses = addresses or []

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        text = str(value).strip()
        if text.isdigit() and 1 <= int(text) <= self.count:
            return int(text)
        for listed in (self.addresses, self.names):
            matches = [number for number, item in enumerate(listed, 1)
                       if item.casefold() == text.casefold()]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                self.fail(f"{len(matches)} servers are called {text!r}: type the number of "
                          "the one you mean", param, ctx)
        self.fail(f"{text!r} is not in the list: type a number from 1 to {self.count}, "
                  "or a server's name", param, ctx)


def fingerprint_prefix(fingerprint: str | None) -> str:
    """Enough of a fingerprint to tell two servers apart at a glance."""
    return "no TLS" if fingerprint is None else fingerprint[:15]


def discover_target(server_name: str | None, broadcast: tuple[str, ...], discovery_port: int,
                     *, interactive: bool, check_identity: bool = True
                     ) -> tuple[str, int, str | None]:
    """Find the server to use by discovery: (host, port, announced fingerprint).

    With `check_identity` (TLS, not --insecure), a server whose name or instance id this
    machine pinned, announcing another certificate, is refused before anything is sent to it;
    the connection then checks the presented certificate against the announced one.
    """
    from chatkit.discovery import find_server, one_cluster, pick_node
    from chatkit.paths import known_servers_file
    from chatkit.tls import KnownNames, KnownServers, Sighting

    with discovery_hints():
        found = find_server(server_name, broadcast=list(broadcast) or None,
                            discovery_port=discovery_port)
    known = KnownServers(known_servers_file())
    cluster = one_cluster(found)
    if cluster is not None:  # the nodes of one cluster are one chat: the least loaded
        found = [pick_node(found)]
    if len(found) > 1:
        listing = ", ".join(f"{s.name} ({s.address}, {fingerprint_prefix(s.fingerprint)})"
                            for s in found)
        if not interactive:
            raise ConfigError(f"{len(found)} servers answered: {listing}; "
                              "choose one with --server NAME or give HOST[:PORT]")
        pins = known.all()
        for number, candidate in enumerate(found, 1):
            needs = {True: "  needs a password", False: "", None: ""}[candidate.password]
            pinned = ("  pinned" if candidate.fingerprint is not None
                      and pins.get(candidate.address) == candidate.fingerprint else "")
            click.echo(f"  {number}. {candidate.name}  {candidate.address}  "
                       f"{fingerprint_prefix(candidate.fingerprint)}  "
                       f"{candidate.users} users{needs}{pinned}"
                       + (f"  cluster {candidate.cluster}" if candidate.cluster else ""),
                       err=True)
        choice = click.prompt("Which server? (number or name)", err=True, type=ServerNumber(
            len(found), [s.name for s in found], [s.address for s in found]))
        found = [found[choice - 1]]
    chosen = found[0]
    announced = chosen.fingerprint if chosen.tls else None
    if check_identity:
        names = KnownNames(known)
        sighting = Sighting(chosen.identity, chosen.instance, chosen.address, announced)
        names.check(sighting)
        names.remember(sighting)
    if cluster is not None:
        click.echo(f"chatkit: found cluster {cluster!r}: node {chosen.node} at "
                   f"{chosen.address} ({chosen.users} users)", err=True)
    else:
        click.echo(f"chatkit: found {chosen.name!r} at {chosen.address}", err=True)
    return chosen.host, chosen.port, announced


def resolve_address(address: str, port: int | None) -> tuple[str, int]:
    try:
        host, parsed_port = parse_address(address, DEFAULT_PORT)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return host, port or parsed_port
