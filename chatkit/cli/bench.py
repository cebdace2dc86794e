"""`chatkit bench`: the load generator's command line."""

from __future__ import annotations

import sys

import click

from chatkit.cli.boundary import errors_as_click
from chatkit.errors import ConfigError, ExitCode
from chatkit.protocol import DEFAULT_PORT

#: The flag of each setting a SettingError may name
FLAGS = {name: f"--{name}" for name in ("clients", "senders", "rate", "duration", "messages",
                                        "size", "window", "processes")}


@click.command()
@click.argument("addresses", nargs=-1, metavar="[HOST[:PORT]]...")
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
@click.option("--target", type=click.Choice(["chatkit", "redis", "irc"]), default="chatkit",
              show_default=True, help="What the address is: a chatkit server, Redis pub/sub "
              "(the reference of the benchmark suite), or a chatkit server's IRC port "
              "(`serve --irc-port`).")
@click.option("--tls/--no-tls", "use_tls", default=None,
              help="Connect with TLS [default: on for chatkit, off for redis]; the certificate "
                   "is not checked (bench measures speed, it sends nothing secret).")
@click.option("--processes", default="auto", show_default=True, metavar="N|auto",
              help="Generator processes, each an event loop with a share of the clients "
                   "(one process saturates near one core). auto: with --max one per 50 "
                   "clients, with --rate one per 100,000 deliveries/s expected; at least 1, "
                   "at most one per CPU core and 4.")
@click.option("--json", "json_output", is_flag=True, help="Print one JSON object.")
def bench(addresses: tuple[str, ...], clients: int, senders: int, rate: float | None,
          max_speed: bool, duration: float, messages: int | None, size: int, window: int,
          room: str | None, stalled: int, target: str, use_tls: bool | None,
          processes: str, json_output: bool) -> None:
    """Load-test a server: N clients in one room, S of them sending; report deliveries/s,
    latency, lost/duplicated/reordered messages and the generator's own CPU use.

    Several addresses (the nodes of one cluster, `serve --cluster`): the clients, senders
    included, are spread over them in turn, and the latency from a sender on one node to a
    receiver on another is reported apart (cross-node).

    Exit status: 0 every message arrived once and in order; 1 otherwise; 3 unreachable;
    4 refused by the server (a wrong password, say).
    """
    from chatkit.bench import BenchConfig, SettingError, auto_processes, run_bench
    from chatkit.cli.bench_output import ProgressLine, main_json, stderr_is_tty, summary
    from chatkit.net.addresses import parse_address

    if processes == "auto":
        nprocs = auto_processes(clients, rate)  # rate None: full speed
    else:
        try:
            nprocs = int(processes)
        except ValueError:
            raise click.BadParameter(f"{processes!r} is neither a number nor 'auto'",
                                     param_hint="--processes") from None
    with errors_as_click():
        if rate is not None and max_speed:
            raise ConfigError("--rate and --max exclude each other")
        default_port = {"redis": 6379, "irc": 6667}.get(target, DEFAULT_PORT)
        try:
            servers = [parse_address(address, default_port)
                       for address in addresses or ("127.0.0.1",)]
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        host, port = servers[0]
        progress = not json_output and stderr_is_tty()
        try:
            result = run_bench(BenchConfig(
                host=host, port=port, clients=clients, senders=senders, rate=rate,
                duration=duration, messages=messages, size=size, window=window, room=room,
                stalled=stalled, target=target,
                tls=(target == "chatkit") if use_tls is None else use_tls,
                progress=progress, processes=nprocs,
                addresses=servers if len(servers) > 1 else []),
                on_progress=ProgressLine().show if progress else None)
        except SettingError as exc:
            raise ConfigError(exc.worded(FLAGS)) from None
    click.echo(main_json(result) if json_output else summary(result))
    if not result.ok:
        sys.exit(ExitCode.ERROR)
