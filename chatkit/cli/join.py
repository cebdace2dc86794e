"""`chatkit join`: the interactive client (or, without a terminal, the piped one)."""

from __future__ import annotations

import sys
from typing import TextIO

import click

from chatkit.cli.boundary import errors_as_click
from chatkit.cli.client_hints import client_flag_hints
from chatkit.cli.options import (
    chat_target_options,
    client_password,
    client_security_options,
    discover_target,
    discovery_client_options,
    resolve_address,
    terminal_password,
)


@click.command()
@chat_target_options
@click.option("--json", "json_output", is_flag=True,
              help="Without a terminal: print events as JSON lines.")
@click.option("--history", "history", type=click.IntRange(0, 1000), default=None,
              help="Stored messages to show on joining a room [default: about one screen in "
                   "a terminal, the server's setting otherwise].")
@click.option("--no-history", is_flag=True, help="Show no stored messages on join "
                                                 "(--history 0).")
@discovery_client_options
@client_security_options
def join(address: str | None, port: int | None, nick: str | None, room: str,
         json_output: bool, history: int | None, no_history: bool, server_name: str | None,
         broadcast: tuple[str, ...], discovery_port: int, no_tls: bool, insecure: bool,
         password: str | None, password_file: TextIO | None) -> None:
    """Join a server and chat interactively (or pipe lines in and out).

    Without HOST, finds the server on the local network (UDP discovery).
    """
    with errors_as_click(), client_flag_hints():
        expected = None
        if address is None:
            host, port, expected = discover_target(
                server_name, broadcast, discovery_port,
                interactive=sys.stdin.isatty() and not json_output,
                check_identity=not no_tls and not insecure)
        else:
            host, port = resolve_address(address, port)
        from chatkit.client import run_join

        status = run_join(host, port, nick, room, json_output, tls=not no_tls,
                          insecure=insecure, password=client_password(password, password_file),
                          expected_fingerprint=expected,
                          ask_password=terminal_password(sys.stdin.isatty()),
                          history=0 if no_history else history)
    sys.exit(status)
