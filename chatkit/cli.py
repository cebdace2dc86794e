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
from collections.abc import Iterator

import click
from click.shell_completion import get_completion_class

from chatkit import __version__
from chatkit.errors import ChatkitError, ConfigError, ExitCode
from chatkit.protocol import DEFAULT_PORT, DEFAULT_ROOM

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
def serve(host: str, port: int, name: str | None, discovery: bool, discovery_port: int,
          log_level: str) -> None:
    """Run a chat server until Ctrl-C or SIGTERM."""
    from chatkit.server import Server, ServerConfig, raise_fd_limit

    _setup_logging(log_level)
    config = ServerConfig(host=host, port=port, discovery=discovery,
                          discovery_port=discovery_port)
    if name:
        config.name = name
    raise_fd_limit()
    server = Server(config)
    with _errors_as_click():
        server.start()
    click.echo(f"chatkit: server {server.name!r} listening on "
               f"{', '.join(server.addresses())}", nl=True)
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


@cli.command()
@click.argument("address", required=False, metavar="[HOST[:PORT]]")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help=f"Server port [default: {DEFAULT_PORT}].")
@click.option("--nick", envvar="CHATKIT_NICK", help="Your nickname (or set CHATKIT_NICK).")
@click.option("--room", default=DEFAULT_ROOM, show_default=True, help="Room to join first.")
@click.option("--json", "json_output", is_flag=True,
              help="Without a terminal: print events as JSON lines.")
def join(address: str | None, port: int | None, nick: str | None, room: str,
         json_output: bool) -> None:
    """Join a server and chat interactively (or pipe lines in and out)."""
    with _errors_as_click():
        host, port = _resolve_address(address, port)
        raise ConfigError("the interactive client is not built yet; "
                          f"meanwhile use `nc {host} {port}` or `chatkit send`")


@cli.command()
@click.option("--timeout", default=2.0, show_default=True, type=click.FloatRange(0.1, 60),
              help="Seconds to wait for answers.")
@click.option("--json", "json_output", is_flag=True, help="Print JSON.")
def discover(timeout: float, json_output: bool) -> None:
    """Find chatkit servers on the local network."""
    with _errors_as_click():
        raise ConfigError("discovery is not built yet; ask for the server's address and use "
                          "`chatkit join HOST`")


@cli.command()
@click.option("--host", default=None, help="Server address.")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@click.option("--nick", envvar="CHATKIT_NICK", required=True,
              help="Nickname to send as (or set CHATKIT_NICK).")
@click.option("--room", default=DEFAULT_ROOM, show_default=True,
              help="Existing room to send to.")
@click.argument("message", nargs=-1)
def send(host: str | None, port: int, nick: str, room: str, message: tuple[str, ...]) -> None:
    """Send MESSAGE (or each line of stdin) to a room, and wait until the server accepted it.

    Exit status: 0 sent; 3 server unreachable; 4 refused (nick taken, no such room, ...);
    5 not a chatkit server.
    """
    from chatkit.connection import send_messages

    with _errors_as_click():
        if host is None:
            raise ConfigError("no server given: use --host HOST")
        lines = [" ".join(message)] if message else sys.stdin
        send_messages(host, port, nick, room, lines)


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


def _resolve_address(address: str | None, port: int | None) -> tuple[str, int]:
    from chatkit.connection import parse_address

    if address is None:
        raise ConfigError("no server address given: `chatkit join HOST[:PORT]`")
    try:
        host, parsed_port = parse_address(address)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return host, port or parsed_port


def main() -> None:
    """Console entry point."""
    cli(prog_name="chatkit")
