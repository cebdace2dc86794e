"""The `chatkit` command line: parses options and calls core code, nothing more.

One boundary (`_errors_as_click`) turns ChatkitError into a one-line message and its documented
exit status; anything unexpected is one line too, with the traceback only under `--debug`.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

import click
from click.shell_completion import CompletionItem, get_completion_class

from chatkit import __version__
from chatkit.errors import ChatkitError, ConfigError, ExitCode
from chatkit.protocol import DEFAULT_PORT, DEFAULT_ROOM
from chatkit.store import FSYNC_POLICIES

log = logging.getLogger("chatkit")
SHELLS = ("bash", "zsh", "fish")


class CliError(click.ClickException):
    """A one-line error with the exit status of the ChatkitError behind it."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@contextlib.contextmanager
def _errors_as_click() -> Iterator[None]:
    try:
        yield
    except ChatkitError as exc:
        raise CliError(str(exc), exc.exit_code) from None
    except click.ClickException:
        raise
    except Exception as exc:
        if _debug_enabled():
            raise
        raise CliError(f"internal error: {type(exc).__name__}: {exc} "
                       "(run `chatkit --debug ...` for the traceback)", ExitCode.ERROR) from None


def _debug_enabled() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().params.get("debug"))


def _setup_logging(verbosity: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s",
                                           datefmt="%H:%M:%S"))
    root = logging.getLogger("chatkit")
    root.handlers[:] = [handler]
    root.setLevel(verbosity.upper())
    root.propagate = False


class _Shutdown(Exception):
    """Raised in the main thread by SIGINT/SIGTERM to leave the serve loop."""


def _raise_shutdown(signum: int, _frame: object) -> None:
    raise _Shutdown(signal.Signals(signum).name)


@click.group(context_settings={"help_option_names": ["-h", "--help"],
                               "auto_envvar_prefix": "CHATKIT"})
@click.version_option(__version__, "-V", "--version", prog_name="chatkit")
@click.option("--debug", is_flag=True, help="Show tracebacks for internal errors.")
def cli(debug: bool) -> None:
    """Chat on a local network from the terminal, with zero set-up.

    Start a server with `chatkit serve`, then `chatkit join --nick NAME` from any machine
    on the network (or `nc HOST 12345`).
    """


@cli.command()
@click.option("--host", default="0.0.0.0", show_default=True,
              help="Address to listen on; `::` for IPv6 (and IPv4), 127.0.0.1 for this machine.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port (0 picks a free one).")
@click.option("--name", default=None, help="Server name shown to clients [default: hostname].")
@click.option("--discovery/--no-discovery", default=True, show_default=True,
              help="Answer and send LAN discovery broadcasts.")
@click.option("--discovery-port", default=DEFAULT_PORT, show_default=True,
              type=click.IntRange(1, 65535), help="UDP port for discovery.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", show_default=True, help="What the server logs to stderr.")
@click.option("--db", "db_path", type=click.Path(dir_okay=False), default=None,
              help="Message log (SQLite) [default: messages.db in the user data directory].")
@click.option("--no-history", is_flag=True,
              help="Keep messages in memory only: nothing written to disk, history lost at exit.")
@click.option("--history-on-join", default=50, show_default=True, type=click.IntRange(0, 1000),
              help="Messages of a room sent to someone joining it.")
@click.option("--log-private", is_flag=True,
              help="Also store private messages (by default they are never written to disk).")
@click.option("--fsync", type=click.Choice(FSYNC_POLICIES), default="normal", show_default=True,
              help="normal: survives the server being killed; full: also power loss (slower).")
@click.option("--retain-days", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Delete stored messages older than this many days.")
@click.option("--max-messages", type=click.IntRange(min=1), default=None,
              help="Keep at most this many stored messages (the newest).")
@click.option("--tls/--no-tls", default=True, show_default=True,
              help="Offer TLS (chatkit clients use it; nc/telnet users still get plain text).")
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Your own certificate (PEM) [default: self-signed, made on first run].")
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True), default=None,
              help="The key of --tls-cert (PEM).")
@click.option("--require-tls", is_flag=True, help="Refuse unencrypted connections.")
@click.option("--password", envvar="CHATKIT_PASSWORD", default=None,
              help="Password every client must give (prefer CHATKIT_PASSWORD or "
                   "--password-file: a command line is visible in `ps`).")
@click.option("--password-file", type=click.File("r"), default=None,
              help="Read the password from the first line of this file.")
@click.option("--rate-limit", default=5.0, show_default=True, type=click.FloatRange(min=0),
              help="Lines per second each client may send (bursts of 20); 0 = no limit.")
@click.option("--max-clients", default=4096, show_default=True, type=click.IntRange(min=1),
              help="Connections in all.")
@click.option("--max-per-address", default=32, show_default=True, type=click.IntRange(min=0),
              help="Connections from one IP address; 0 = no limit.")
def serve(host: str, port: int, name: str | None, discovery: bool, discovery_port: int,
          log_level: str, db_path: str | None, no_history: bool, history_on_join: int,
          log_private: bool, fsync: str, retain_days: float | None,
          max_messages: int | None, tls: bool, tls_cert: str | None, tls_key: str | None,
          require_tls: bool, password: str | None, password_file: TextIO | None,
          rate_limit: float, max_clients: int, max_per_address: int) -> None:
    """Run a chat server until Ctrl-C or SIGTERM."""
    from chatkit.netutil import raise_fd_limit
    from chatkit.server import Server, ServerConfig

    _setup_logging(log_level)
    if no_history and db_path:
        raise click.UsageError("--db and --no-history cannot be combined")
    if require_tls and not tls:
        raise click.UsageError("--require-tls and --no-tls cannot be combined")
    if password_file is not None:
        password = password_file.readline().rstrip("\r\n")
    if password == "":
        raise click.UsageError("the password is empty")
    config = ServerConfig(host=host, port=port, discovery=discovery,
                          discovery_port=discovery_port,
                          db=None if no_history else (db_path or str(default_db_path())),
                          fsync=fsync, log_private=log_private,
                          history_on_join=history_on_join, retain_days=retain_days,
                          max_messages=max_messages, tls=tls, tls_cert=tls_cert,
                          tls_key=tls_key, require_tls=require_tls, password=password,
                          rate_limit=rate_limit, max_clients=max_clients,
                          max_per_address=max_per_address)
    if name:
        config.name = name
    raise_fd_limit()
    with _errors_as_click():
        server = Server(config)
        server.start()
    click.echo(f"chatkit: server {server.name!r} listening on "
               f"{', '.join(server.addresses())}", nl=True)
    if server.fingerprint:
        click.echo(f"chatkit: TLS certificate fingerprint {server.fingerprint}")
    if server.discovery is not None:
        click.echo(f"chatkit: {server.discovery.describe()}")
    if password:
        click.echo("chatkit: clients need the password")
    sys.stdout.flush()
    previous = {sig: signal.signal(sig, _raise_shutdown) for sig in (signal.SIGINT,
                                                                     signal.SIGTERM)}
    try:
        threading.Event().wait()
    except (_Shutdown, KeyboardInterrupt) as exc:
        log.info("shutting down (%s)", exc or "SIGINT")
    finally:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not break the shutdown
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def client_security_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options every command that connects as a client shares: --no-tls, --insecure,
    --password."""
    command = click.option("--password", envvar="CHATKIT_PASSWORD", default=None,
                           help="Server password (or set CHATKIT_PASSWORD).")(command)
    command = click.option("--insecure", is_flag=True,
                           help="Encrypt, but do not check the server's pinned certificate.",
                           )(command)
    command = click.option("--no-tls", is_flag=True,
                           help="Connect without encryption (servers run with --no-tls).",
                           )(command)
    return command


def _complete_server_names(ctx: click.Context, param: click.Parameter, incomplete: str
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
                           shell_complete=_complete_server_names,
                           help="Without a host: the discovered server with this name.")(command)
    return command


def _discover_target(server_name: str | None, broadcast: tuple[str, ...], discovery_port: int,
                     *, interactive: bool) -> tuple[str, int, str | None]:
    """Find the server to use by discovery: (host, port, announced fingerprint)."""
    from chatkit.discovery import find_server

    found = find_server(server_name, broadcast=list(broadcast) or None,
                        discovery_port=discovery_port)
    if len(found) > 1:
        listing = ", ".join(f"{s.name} ({s.address})" for s in found)
        if not interactive:
            raise ConfigError(f"{len(found)} servers answered: {listing}; "
                              "choose one with --server NAME or give HOST[:PORT]")
        for number, candidate in enumerate(found, 1):
            click.echo(f"  {number}. {candidate.name}  {candidate.address}  "
                       f"{candidate.users} users", err=True)
        choice = click.prompt("Which server?", type=click.IntRange(1, len(found)), err=True)
        found = [found[choice - 1]]
    chosen = found[0]
    click.echo(f"chatkit: found {chosen.name!r} at {chosen.address}", err=True)
    return chosen.host, chosen.port, chosen.fingerprint if chosen.tls else None


@cli.command()
@click.argument("address", required=False, metavar="[HOST[:PORT]]")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help=f"Server port [default: {DEFAULT_PORT}].")
@click.option("--nick", envvar="CHATKIT_NICK", help="Your nickname (or set CHATKIT_NICK).")
@click.option("--room", default=DEFAULT_ROOM, show_default=True, help="Room to join first.")
@click.option("--json", "json_output", is_flag=True,
              help="Without a terminal: print events as JSON lines.")
@discovery_client_options
@client_security_options
def join(address: str | None, port: int | None, nick: str | None, room: str,
         json_output: bool, server_name: str | None, broadcast: tuple[str, ...],
         discovery_port: int, no_tls: bool, insecure: bool, password: str | None) -> None:
    """Join a server and chat interactively (or pipe lines in and out).

    Without HOST, finds the server on the local network (UDP discovery).
    """
    with _errors_as_click():
        expected = None
        if address is None:
            host, port, expected = _discover_target(
                server_name, broadcast, discovery_port,
                interactive=sys.stdin.isatty() and not json_output)
        else:
            host, port = _resolve_address(address, port)
        from chatkit.client import run_join

        status = run_join(host, port, nick, room, json_output, tls=not no_tls,
                          insecure=insecure, password=password, expected_fingerprint=expected)
    sys.exit(status)


@cli.command()
@click.option("--timeout", default=2.0, show_default=True, type=click.FloatRange(0.1, 60),
              help="Seconds to wait for answers.")
@click.option("--json", "json_output", is_flag=True, help="Print JSON.")
@click.option("--watch", "watch_mode", is_flag=True,
              help="Keep listening; show servers appearing and leaving (Ctrl-C stops).")
@click.option("--diagnose", "diagnose_mode", is_flag=True,
              help="Self-test each network interface and explain why nothing answers.")
@click.option("--broadcast", "broadcast", multiple=True, metavar="ADDR",
              help="Probe ADDR instead of every interface's broadcast address (repeatable).")
@click.option("--discovery-port", default=DEFAULT_PORT, show_default=True,
              type=click.IntRange(1, 65535), help="UDP port for discovery.")
def discover(timeout: float, json_output: bool, watch_mode: bool, diagnose_mode: bool,
             broadcast: tuple[str, ...], discovery_port: int) -> None:
    """Find chatkit servers on the local network (UDP broadcast).

    Exit status: 0 at least one server found; 6 none answered.
    """
    from chatkit.discovery import run_discover

    if watch_mode and diagnose_mode:
        raise click.UsageError("--watch and --diagnose cannot be combined")
    with _errors_as_click():
        status = run_discover(timeout=timeout, json_output=json_output, watch_mode=watch_mode,
                              diagnose_mode=diagnose_mode, broadcast=list(broadcast) or None,
                              discovery_port=discovery_port)
    sys.exit(status)


@cli.command()
@click.option("--host", default=None, metavar="HOST[:PORT]",
              help="Server address [default: found by discovery].")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True,
              help="Server port, when --host gives none.")
@click.option("--nick", envvar="CHATKIT_NICK", required=True,
              help="Nickname to send as (or set CHATKIT_NICK).")
@click.option("--room", default=DEFAULT_ROOM, show_default=True,
              help="Existing room to send to.")
@discovery_client_options
@client_security_options
@click.argument("message", nargs=-1)
def send(host: str | None, port: int, nick: str, room: str, server_name: str | None,
         broadcast: tuple[str, ...], discovery_port: int, no_tls: bool, insecure: bool,
         password: str | None, message: tuple[str, ...]) -> None:
    """Send MESSAGE (or each line of stdin) to a room, and wait until the server accepted it.

    Without --host, finds the server on the local network (UDP discovery).
    Exit status: 0 sent; 3 server unreachable; 4 refused (nick taken, no such room, ...);
    5 not a chatkit server; 6 no server found.
    """
    from chatkit.connection import parse_address, send_messages

    with _errors_as_click():
        expected = None
        if host is None:
            host, port, expected = _discover_target(server_name, broadcast, discovery_port,
                                                    interactive=False)
        else:
            try:
                host, port = parse_address(host, port)  # as `chatkit join` takes it
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        lines = [" ".join(message)] if message else sys.stdin
        send_messages(host, port, nick, room, lines, tls=not no_tls, insecure=insecure,
                      password=password, expected_fingerprint=expected,
                      notify=lambda note: click.echo(note, err=True))


@cli.command()
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

    with _errors_as_click():
        try:
            since_ts = parse_since(since) if since else None
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--since") from None
        rows = read_history(db_path or default_db_path(), room=room, since=since_ts, grep=grep,
                            limit=limit)
    for row in rows:
        click.echo(json.dumps(row.as_json(), ensure_ascii=False) if json_output
                   else format_line(row))


@cli.command()
@click.argument("address", required=False, metavar="[HOST[:PORT]]")
@click.option("--clients", default=10, show_default=True, type=click.IntRange(1, 10000),
              help="Connections to open, all in one room.")
@click.option("--senders", default=1, show_default=True, type=click.IntRange(0, 10000),
              help="How many of the clients send.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Aggregate messages per second over all senders.")
@click.option("--max", "max_speed", is_flag=True,
              help="Send as fast as the server accepts (the default without --rate).")
@click.option("--duration", default=5.0, show_default=True, type=click.FloatRange(0.1, 600),
              help="Seconds of sending.")
@click.option("--messages", type=click.IntRange(min=1), default=None,
              help="Stop each sender after this many messages (or at --duration).")
@click.option("--size", default=64, show_default=True, type=click.IntRange(0, 2000),
              help="Bytes of message text.")
@click.option("--window", default=16, show_default=True, type=click.IntRange(1, 10000),
              help="Messages in flight per sender with --max.")
@click.option("--room", default=None, help="Room to use [default: a fresh bench-XXXXXX].")
@click.option("--stalled", default=0, show_default=True, type=click.IntRange(0, 10000),
              help="Extra clients that join the room and never read.")
@click.option("--target", type=click.Choice(["chatkit", "redis"]), default="chatkit",
              show_default=True, help="What the address is: a chatkit server, or Redis pub/sub "
              "(the reference of the benchmark suite).")
@click.option("--tls/--no-tls", "use_tls", default=None,
              help="Connect with TLS [default: on for chatkit, off for redis]; the certificate "
                   "is not checked (bench measures speed, it sends nothing secret).")
@click.option("--processes", default="auto", show_default=True, metavar="N|auto",
              help="Generator processes, each an event loop with a share of the clients "
                   "(one process saturates near one core). auto: with --max one per 50 "
                   "clients, with --rate one per 100,000 deliveries/s expected; at least 1, "
                   "at most one per CPU core and 4.")
@click.option("--json", "json_output", is_flag=True, help="Print one JSON object.")
def bench(address: str | None, clients: int, senders: int, rate: float | None,
          max_speed: bool, duration: float, messages: int | None, size: int, window: int,
          room: str | None, stalled: int, target: str, use_tls: bool | None,
          processes: str, json_output: bool) -> None:
    """Load-test a server: N clients in one room, S of them sending; report deliveries/s,
    latency, lost/duplicated/reordered messages and the generator's own CPU use.

    Exit status: 0 every message arrived once and in order; 1 otherwise; 3 unreachable;
    4 refused by the server (a wrong password, say).
    """
    from chatkit.bench import BenchConfig, auto_processes, main_json, run_bench, stderr_is_tty
    from chatkit.connection import parse_address

    if processes == "auto":
        nprocs = auto_processes(clients, rate)  # rate None: full speed
    else:
        try:
            nprocs = int(processes)
        except ValueError:
            raise click.BadParameter(f"{processes!r} is neither a number nor 'auto'",
                                     param_hint="--processes") from None
    with _errors_as_click():
        if rate is not None and max_speed:
            raise ConfigError("--rate and --max exclude each other")
        try:
            host, port = parse_address(address or "127.0.0.1",
                                       6379 if target == "redis" else DEFAULT_PORT)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        result = run_bench(BenchConfig(
            host=host, port=port, clients=clients, senders=senders, rate=rate,
            duration=duration, messages=messages, size=size, window=window, room=room,
            stalled=stalled, target=target,
            tls=(target == "chatkit") if use_tls is None else use_tls,
            progress=not json_output and stderr_is_tty(), processes=nprocs))
    click.echo(main_json(result) if json_output else result.summary())
    if not result.ok:
        sys.exit(ExitCode.ERROR)


@cli.command()
@click.option("--forget", metavar="HOST:PORT", default=None,
              help="Forget the certificate pinned for HOST:PORT (after a legitimate change).")
def trust(forget: str | None) -> None:
    """List the server certificates this machine has pinned, or forget one."""
    from chatkit.paths import config_dir
    from chatkit.tls import KnownServers

    known = KnownServers(config_dir() / "known_servers.json")
    with _errors_as_click():
        if forget is not None:
            if not known.forget(forget):
                raise ConfigError(f"no certificate pinned for {forget}")
            click.echo(f"forgot {forget}; the next connection pins its certificate anew")
            return
        for address, fingerprint in sorted(known.all().items()):
            click.echo(f"{address}  {fingerprint}")


@cli.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL.

    \b
    bash:  eval "$(chatkit completion bash)"     (add to ~/.bashrc)
    zsh:   eval "$(chatkit completion zsh)"      (add to ~/.zshrc)
    fish:  chatkit completion fish > ~/.config/fish/completions/chatkit.fish
    """
    completer = get_completion_class(shell)
    assert completer is not None  # every name in SHELLS is one of click's
    click.echo(completer(cli, {}, "chatkit", "_CHATKIT_COMPLETE").source())


def default_db_path() -> Path:
    from chatkit.paths import data_dir

    return data_dir() / "messages.db"


def _resolve_address(address: str, port: int | None) -> tuple[str, int]:
    from chatkit.connection import parse_address

    try:
        host, parsed_port = parse_address(address)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return host, port or parsed_port


def main() -> None:
    """Console entry point."""
    cli(prog_name="chatkit")
