"""`chatkit discover`: list, watch or diagnose servers on the local network."""

from __future__ import annotations

import sys

import click

from chatkit.cli.boundary import errors_as_click
from chatkit.protocol import DEFAULT_PORT


@click.command()
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
    with errors_as_click():
        status = run_discover(timeout=timeout, json_output=json_output, watch_mode=watch_mode,
                              diagnose_mode=diagnose_mode, broadcast=list(broadcast) or None,
                              discovery_port=discovery_port)
    sys.exit(status)
