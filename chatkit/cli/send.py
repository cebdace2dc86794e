"""`chatkit send`: post a message, or each line of stdin, from a script."""

from __future__ import annotations

import sys
from typing import TextIO

import click

from chatkit.cli.boundary import errors_as_click
from chatkit.cli.client_hints import client_flag_hints
from chatkit.cli.options import (
    client_password,
    client_security_options,
    discover_target,
    discovery_client_options,
    terminal_password,
)
from chatkit.errors import ConfigError
from chatkit.protocol import DEFAULT_PORT, DEFAULT_ROOM


@click.command()
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
         password: str | None, password_file: TextIO | None, message: tuple[str, ...]
         ) -> None:
    """Send MESSAGE (or each line of stdin) to a room, and wait until the server accepted it.

    Without --host, finds the server on the local network (UDP discovery).
    Exit status: 0 sent; 3 server unreachable; 4 refused (nick taken, no such room, server
    full, ...); 5 not a chatkit server; 6 no server found; 7 the server's certificate is not
    the pinned one.
    """
    from chatkit.client.send import send_messages
    from chatkit.net.addresses import parse_address

    with errors_as_click(), client_flag_hints():
        expected = None
        if host is None:
            host, port, expected = discover_target(server_name, broadcast, discovery_port,
                                                    interactive=False,
                                                    check_identity=not no_tls and not insecure)
        else:
            try:
                host, port = parse_address(host, port)  # as `chatkit join` takes it
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        lines = [" ".join(message)] if message else sys.stdin
        send_messages(host, port, nick, room, lines, tls=not no_tls, insecure=insecure,
                      password=client_password(password, password_file),
                      expected_fingerprint=expected,
                      notify=note_on_stderr,
                      ask_password=terminal_password(sys.stdin.isatty()))


def note_on_stderr(note: str) -> None:
    """A note for the user; when nobody reads stderr any more, the messages still go out."""
    try:
        click.echo(note, err=True)
    except BrokenPipeError:
        pass
