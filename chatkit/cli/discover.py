"""`chatkit discover`: list, watch or diagnose servers on the local network; the exit status
says whether any answered (0) or none did (6)."""

from __future__ import annotations

import json
import sys
import threading
from typing import TextIO

import click

from chatkit.cli.boundary import errors_as_click
from chatkit.cli.discover_output import (
    NOTHING_FOUND_HINT,
    diagnose_to_dict,
    format_diagnose,
    format_event,
    format_json,
    format_table,
)
from chatkit.cli.options import discovery_hints
from chatkit.errors import ExitCode
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
    if watch_mode and diagnose_mode:
        raise click.UsageError("--watch and --diagnose cannot be combined")
    with errors_as_click(), discovery_hints():
        status = run_discover(timeout=timeout, json_output=json_output, watch_mode=watch_mode,
                              diagnose_mode=diagnose_mode, broadcast=list(broadcast) or None,
                              discovery_port=discovery_port)
    sys.exit(status)


def run_discover(*, timeout: float = 2.0, json_output: bool = False, watch_mode: bool = False,
                 diagnose_mode: bool = False, broadcast: list[str] | None = None,
                 discovery_port: int = DEFAULT_PORT, out: TextIO | None = None,
                 err: TextIO | None = None, stop: threading.Event | None = None,
                 duration: float | None = None) -> int:
    """What `chatkit discover` does; returns the exit status (0 found, 6 nothing found).

    `stop`/`duration` bound `watch_mode` (tests); otherwise it runs until Ctrl-C.
    """
    from chatkit.discovery import diagnose, watch
    from chatkit.discovery import discover as discover_servers

    out = out or sys.stdout
    err = err or sys.stderr
    if diagnose_mode:
        report = diagnose(timeout=timeout, broadcast=broadcast, discovery_port=discovery_port)
        print(json.dumps(diagnose_to_dict(report), indent=2) if json_output
              else format_diagnose(report), file=out, flush=True)
        return ExitCode.OK if report.ok else ExitCode.NOT_FOUND
    if watch_mode:
        seen = False
        if not json_output:
            print(f"watching for chatkit servers on UDP {discovery_port} (Ctrl-C to stop)",
                  file=err, flush=True)
        try:
            for event in watch(broadcast=broadcast, discovery_port=discovery_port,
                               probe_interval=max(timeout, 1.0) * 5, stop=stop,
                               duration=duration):
                seen = True
                print(json.dumps(event.to_dict(), ensure_ascii=False) if json_output
                      else format_event(event), file=out, flush=True)
        except KeyboardInterrupt:
            pass
        return ExitCode.OK if seen else ExitCode.NOT_FOUND
    servers = discover_servers(timeout=timeout, broadcast=broadcast,
                               discovery_port=discovery_port)
    if json_output:
        print(format_json(servers), file=out, flush=True)
    elif servers:
        print(format_table(servers), file=out, flush=True)
    if not servers:
        print(f"no chatkit server answered within {timeout:g} s on UDP {discovery_port}; "
              + NOTHING_FOUND_HINT, file=err, flush=True)
        return ExitCode.NOT_FOUND
    return ExitCode.OK
