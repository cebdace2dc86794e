"""`chatkit serve`: build the server's configuration from the options, start it, print the
banner, and stop it gracefully on Ctrl-C or SIGTERM."""

from __future__ import annotations

import gc
import logging
import signal
import sys
import threading
from typing import TYPE_CHECKING, TextIO

import click

from chatkit import paths
from chatkit.cli.boundary import errors_as_click, setup_logging
from chatkit.cli.options import warn_exposed_password
from chatkit.net.addresses import host_of
from chatkit.net.sockets import clients_within, raise_fd_limit
from chatkit.protocol import DEFAULT_PORT
from chatkit.protocol.constants import DEFAULT_CROWD_SIZE
from chatkit.store import FSYNC_POLICIES
from chatkit.tls.certificates import fingerprint_hex

if TYPE_CHECKING:  # imported when the command runs: `chatkit --help` and completion stay fast
    from chatkit.discovery import DiscoveryResponder
    from chatkit.server import Server

#: allocations between two young-generation collections in the server process
GC_THRESHOLD = 20_000
#: seconds a thread may run before one waiting for the GIL asks for it (CPython: 0.005)
SWITCH_INTERVAL = 0.1

log = logging.getLogger("chatkit")


class _StopSignal:
    """SIGINT/SIGTERM as an event the main thread waits for. Not an exception raised where
    the signal happens to land: code that catches broad exceptions (a logging handler, a
    safety net) could swallow that, and the server would never stop (seen: a SIGTERM right
    after the banner hung `chatkit serve` about one time in six)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.name = ""

    def __call__(self, signum: int, _frame: object) -> None:
        self.name = self.name or signal.Signals(signum).name
        self.event.set()


class _ReloadSignal:
    """SIGHUP: re-read the message of the day, accounts and bans (`Server.reload`), in the
    main thread's loop, not where the signal lands."""

    def __init__(self) -> None:
        self.wanted = False

    def __call__(self, signum: int, _frame: object) -> None:
        self.wanted = True

    def take(self) -> bool:
        wanted, self.wanted = self.wanted, False
        return wanted


@click.command()
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
@click.option("--max-clients", default=16384, show_default=True, type=click.IntRange(min=1),
              help="Connections in all (lowered to fit the open-file limit).")
@click.option("--crowd-size", default=DEFAULT_CROWD_SIZE, show_default=True,
              type=click.IntRange(min=0),
              help="Above this many people a room announces arrivals and departures as a "
                   "summary every 2 s instead of one by one; 0 = never.")
@click.option("--max-per-address", default=32, show_default=True, type=click.IntRange(min=0),
              help="Connections from one IP address (IPv6: one /64); 0 = no limit.")
@click.option("--max-unregistered", default=256, show_default=True,
              type=click.IntRange(min=0),
              help="Connections at once that have not logged in yet; 0 = no limit.")
@click.option("--admin", "admins", multiple=True, metavar="NICK",
              help="A registered account that is a server admin (repeatable).")
@click.option("--require-account", is_flag=True,
              help="Guests may only /register or /identify (accounts: docs/accounts.md).")
@click.option("--motd", "motd_file", type=click.Path(dir_okay=False, exists=True),
              default=None, help="Message of the day, sent at welcome (re-read on SIGHUP).")
@click.option("--irc-port", type=click.IntRange(0, 65535), default=None,
              help="Also speak IRC on this TCP port (6667 is IRC's; 0 picks a free one) "
                   "[default: off].")
@click.option("--irc-tls-port", type=click.IntRange(0, 65535), default=None,
              help="Also speak IRC over TLS on this port, with the server's certificate "
                   "(6697 is IRC's) [default: off].")
@click.option("--cluster", envvar="CHATKIT_SERVE_CLUSTER", default=None, metavar="URL",
              help="Share rooms with the other nodes of a cluster through Redis: "
                   "redis://[:PASSWORD@]HOST:6379/0 or rediss:// (also CHATKIT_SERVE_CLUSTER; "
                   "docs/cluster.md). Needs chatkit[cluster].")
@click.option("--cluster-name", default=None, metavar="NAME",
              help="The cluster's name in discovery [default: the server's --name].")
@click.option("--reuse-port", is_flag=True,
              help="Share the chat (and IRC) ports with other `chatkit serve --reuse-port` "
                   "processes of this user: several cluster nodes on one host, one port.")
def serve(host: str, port: int, name: str | None, discovery: bool, discovery_port: int,
          log_level: str, db_path: str | None, no_history: bool, history_on_join: int,
          log_private: bool, fsync: str, retain_days: float | None,
          max_messages: int | None, tls: bool, tls_cert: str | None, tls_key: str | None,
          require_tls: bool, password: str | None, password_file: TextIO | None,
          rate_limit: float, max_clients: int, crowd_size: int, max_per_address: int,
          max_unregistered: int, admins: tuple[str, ...], require_account: bool,
          motd_file: str | None, irc_port: int | None, irc_tls_port: int | None,
          cluster: str | None, cluster_name: str | None, reuse_port: bool) -> None:
    """Run a chat server until Ctrl-C or SIGTERM."""
    from chatkit.server import Server, ServerConfig

    setup_logging(log_level)
    # Each connection brings a few dozen long-lived objects; at the default threshold (700
    # allocations) a join storm of 10,000 ran the cycle collector over all of them again and
    # again (8% of the server's CPU, measured with perf). The server makes few cycles.
    gc.set_threshold(GC_THRESHOLD, 20, 100)
    # A thread waiting for the GIL wakes up every switch interval to ask for it. When 10,000
    # people leave at once (a network drops), 10,000 reader threads wait together: at the
    # default 5 ms that is two million wake-ups a second, and the server spent 50-94 s of CPU
    # and 29-55 s of wall time letting them go. Our threads give the GIL up at every system
    # call, so a longer interval costs nothing measurable elsewhere (benchmarks/README.md).
    sys.setswitchinterval(SWITCH_INTERVAL)
    # Reader threads are started bare (chatkit/server/doors/line/door.py): a log record that
    # asked for its thread's name would make each one a threading.Thread after all.
    logging.logThreads = False
    if no_history and db_path:
        raise click.UsageError("--db and --no-history cannot be combined")
    if require_tls and not tls:
        raise click.UsageError("--require-tls and --no-tls cannot be combined")
    if irc_tls_port is not None and not tls:
        raise click.UsageError("--irc-tls-port and --no-tls cannot be combined")
    warn_exposed_password(password_file)
    if password_file is not None:
        password = password_file.readline().rstrip("\r\n")
    if password == "":
        raise click.UsageError("the password is empty")
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("give both --tls-cert and --tls-key, or neither")
    # A node of a cluster keeps history in Redis: its own archive only with --db (so several
    # nodes on one machine need nothing more, and none spends time writing a copy it may
    # never read)
    default_db = None if cluster else str(paths.default_db_file())
    config = ServerConfig(host=host, port=port,
                          db=None if no_history else (db_path or default_db),
                          fsync=fsync, log_private=log_private,
                          history_on_join=history_on_join, retain_days=retain_days,
                          max_messages=max_messages, tls=tls, tls_cert=tls_cert,
                          tls_key=tls_key, require_tls=require_tls, password=password,
                          rate_limit=rate_limit, max_clients=max_clients,
                          max_per_address=max_per_address,
                          max_unregistered=max_unregistered, crowd_size=crowd_size,
                          admins=admins, require_account=require_account,
                          motd_file=motd_file, irc_port=irc_port, irc_tls_port=irc_tls_port,
                          cluster=cluster, cluster_name=cluster_name,
                          reuse_port=reuse_port)
    if name:
        config.name = name
    fd_limit = raise_fd_limit()
    # More clients than descriptors would have accept() fail with EMFILE: fit the limit now,
    # so the client over it is told "server full" (the banner says so).
    config.max_clients = clients_within(fd_limit, max_clients)
    # Handlers first: a SIGTERM that arrives while the server starts or prints its banner (a
    # service manager stopping it at once) must still get the graceful stop, not the default
    # action that kills the process with nothing announced.
    stop = _StopSignal()
    reload = _ReloadSignal()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, reload)
    server: Server | None = None
    try:
        with errors_as_click():
            server = Server(config)
            server.start()
            responder = start_discovery(server, discovery_port) if discovery else None
        if responder is not None:
            warn_if_name_taken(server, discovery_port)
        for line in banner(server, responder, password=bool(password),
                           clients_asked=max_clients, fd_limit=fd_limit):
            click.echo(f"chatkit: {line}")
        sys.stdout.flush()
        while not stop.event.wait(1.0):  # a timeout: a lock wait without one ignores Ctrl-C
            if reload.take():            # on some systems
                with errors_as_click():
                    server.reload()
        log.info("shutting down (%s)", stop.name)
    finally:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not break the shutdown
        if server is not None:
            server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def banner(server: Server, responder: DiscoveryResponder | None, *, password: bool,
           clients_asked: int | None = None, fd_limit: int | None = None) -> list[str]:
    """What `chatkit serve` says when it is up: where it listens, how to join, where messages
    go, TLS, discovery, the password, and the client limit when the descriptor limit
    (`fd_limit`) lowered it below `clients_asked`. Printed once, on stdout (the log does not
    repeat it)."""
    config = server.config
    addresses = server.addresses()
    lines = [f"server {server.name!r} listening on {', '.join(addresses)}"]
    first = addresses[0] if addresses else f"127.0.0.1:{server.port}"
    host = host_of(first)
    join = f"chatkit join {first}" + ("" if config.tls else " --no-tls")
    if config.require_tls:
        lines.append(f"join with `{join}` (nc/telnet are refused: --require-tls)")
    else:
        lines.append(f"join with `{join}`, or `nc {host} {server.port}` / "
                     f"`telnet {host} {server.port}` (plain text, unencrypted)")
    if server.cluster is not None:
        pass  # where messages go: the cluster's line below
    elif config.db:
        lines.append(f"messages stored in {config.db}")
    else:
        lines.append("messages kept in memory only (--no-history): lost when the server stops")
    lines += irc_lines(server, host)
    if server.cluster is not None:
        cluster = server.cluster
        archive = f"{config.db} keeps this node's archive" if config.db else \
            "no archive on this node: --db PATH keeps one"
        lines.append(f"node {cluster.node} of cluster {cluster.cluster_name!r}: messages "
                     f"stored in Redis at {cluster.link.where} ({archive})")
    if server.fingerprint:
        lines.append(f"TLS certificate fingerprint {server.fingerprint}")
        lines.append("  as openssl shows it: SHA256 Fingerprint="
                     f"{fingerprint_hex(server.fingerprint)}")
    elif not config.tls:
        lines.append("TLS off (--no-tls): everything travels unencrypted")
    lines.append(responder.describe() if responder is not None
                 else "discovery off (--no-discovery): clients need the address")
    if config.reuse_port:
        lines.append("listening ports shared with other --reuse-port processes: the system "
                     "spreads new connections among them")
    if password:
        lines.append("clients need the password")
    if config.admins:
        missing = server.hub.accounts.missing_admins()
        lines.append(f"server admins: {', '.join(config.admins)}" + (
            f" ({', '.join(missing)} not registered yet: not an admin until registered and "
            "the server re-reads its files on SIGHUP)" if missing else ""))
    if config.require_account:
        lines.append("guests may only /register or /identify (--require-account)")
    if config.motd_file:
        lines.append(f"message of the day from {config.motd_file} (SIGHUP re-reads it)")
    if clients_asked is not None and config.max_clients < clients_asked:
        lines.append(f"at most {config.max_clients} clients at once: --max-clients "
                     f"{clients_asked} does not fit the limit of {fd_limit} open files "
                     "(raise it with `ulimit -n`)")
    elif fd_limit is not None:
        lines.append(f"up to {config.max_clients} clients at once (open-file limit {fd_limit})")
    return lines


def irc_lines(server: Server, host: str) -> list[str]:
    """The banner's word on the IRC door, when it is on."""
    lines = []
    if server.irc_port is not None:
        plain = "TLS only: --require-tls" if server.config.require_tls else "plain text"
        lines.append(f"IRC clients: {host}/{server.irc_port} ({plain}), "
                     "e.g. `irssi -c {host} -p {port}`".format(host=host, port=server.irc_port))
    if server.irc_tls_port is not None:
        lines.append(f"IRC clients over TLS: {host}/{server.irc_tls_port} (accept the "
                     "certificate by its fingerprint below; docs/irc.md)")
    return lines


def start_discovery(server: Server, discovery_port: int) -> DiscoveryResponder:
    """Answer LAN discovery for a started server (stopped with it). The server and discovery
    never import each other: this is where they meet."""
    from chatkit.discovery import DiscoveryResponder

    responder = DiscoveryResponder(bind_host=server.config.host, chat_port=server.port,
                                   discovery_port=discovery_port, info=server.info)
    try:
        responder.start()
    except BaseException:
        server.stop()
        raise
    server.attach(responder)
    return responder


def warn_if_name_taken(server: Server, discovery_port: int) -> threading.Thread:
    """Warn (in the log) when another server on this server's network already answers to its
    name: people choosing by name (`--server NAME`, the chooser) would have to pick. Runs
    in the background for about a second, probing where this server announces itself."""
    from chatkit.discovery import discover, scope_for_bind
    from chatkit.errors import ChatkitError

    def check() -> None:
        try:
            targets = scope_for_bind(server.config.host).targets()
            found = discover(timeout=1.0, broadcast=targets, discovery_port=discovery_port)
        except (ChatkitError, OSError) as exc:
            log.debug("could not check whether the name %r is free: %s", server.name, exc)
            return
        cluster = server.info().get("cluster")  # its nodes may share one name
        for other in found:
            if other.name.casefold() == server.name.casefold() \
                    and other.instance != server.instance \
                    and (cluster is None or other.cluster != cluster):
                log.warning("another server on the network is also called %r (at %s): "
                            "people choosing by name will be asked which; give this one its "
                            "own name with --name", server.name, other.address)

    thread = threading.Thread(target=check, name="chatkit-namecheck", daemon=True)
    thread.start()
    return thread
