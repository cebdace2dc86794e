"""`chatkit gui`: the desktop client (the `gui` extra), with `chatkit join`'s connection
options."""

from __future__ import annotations

import sys
from typing import TextIO

import click

from chatkit.cli.boundary import errors_as_click
from chatkit.cli.options import (
    chat_target_options,
    client_password,
    client_security_options,
    discovery_client_options,
    resolve_address,
)
from chatkit.errors import ExitCode
from chatkit.protocol import DEFAULT_PORT

MISSING_QT = ("chatkit gui needs Qt for Python, which is not installed: "
              "pip install 'chatkit[gui]'")


@click.command()
@chat_target_options
@click.option("--history", "history", type=click.IntRange(0, 1000), default=None,
              help="Stored messages to show on joining a room [default: the server's].")
@discovery_client_options
@client_security_options
def gui(address: str | None, port: int | None, nick: str | None, room: str,
        history: int | None, server_name: str | None, broadcast: tuple[str, ...],
        discovery_port: int, no_tls: bool, insecure: bool, password: str | None,
        password_file: TextIO | None) -> None:
    """Chat in a desktop window (needs `pip install 'chatkit[gui]'`).

    With HOST and --nick it connects at once; otherwise a start window lists the servers
    found on the local network (or --server NAME picks one) and remembers your choice.
    """
    from chatkit.gui import GuiOptions, qt_missing, run_gui

    if qt_missing():
        click.echo(f"chatkit: {MISSING_QT}", err=True)
        sys.exit(ExitCode.USAGE)
    with errors_as_click():
        host, resolved_port = (None, port or DEFAULT_PORT) if address is None \
            else resolve_address(address, port)
        options = GuiOptions(host=host, port=resolved_port, nick=nick, room=room,
                             tls=not no_tls, insecure=insecure,
                             password=client_password(password, password_file),
                             server_name=server_name, broadcast=broadcast,
                             discovery_port=discovery_port, history=history)
        status = run_gui(options)
    sys.exit(status)
