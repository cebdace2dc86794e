#!/usr/bin/env python3
"""Many people on one server: how fast N connections open and register in one room, what
each costs in server memory once the storm settles, and whether one message then reaches all
N. chatkit against Redis pub/sub (SUBSCRIBE, PUBLISH) in the same run, same generator.

    python benchmarks/crowd.py                      # 1,000 and 10,000 people, both targets
    python benchmarks/crowd.py --clients 1000 --rounds 3 --no-redis

Per cell, a fresh server: `chatkit serve` with benchmarks/run.py's flags (plain text, message
log on) or `redis-server`. The generator (this process, asyncio) opens N connections, at most
`--concurrency` registering at once (a crowd arriving, not one at a time), each sending its
hello and joining `lobby` (chatkit: until `history_end`; Redis: SUBSCRIBE until its reply).
Then: the server's RSS 3 s after the last one registered, less its RSS before the first
(VmRSS, /proc); one message (chatkit: from the first client; Redis: PUBLISH on one more
connection) and how long until all N have it; how many did not (lost). Loopback only;
every phase is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (benchmarks/run.py: servers and /proc readings)

PHASE_TIMEOUT = 120.0
SETTLE_S = 3.0


async def _chatkit_client(port: int, index: int) -> tuple[asyncio.StreamReader,
                                                            asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    hello = {"type": "hello", "version": 1, "nick": f"c{index}", "room": "lobby"}
    writer.write(json.dumps(hello).encode() + b"\n")
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError(f"client {index}: closed while joining")
        if line.startswith(b"!!!") or b'"type":"error"' in line:
            raise ConnectionError(f"client {index}: {line[:200]!r}")
        if b'"history_end"' in line:
            return reader, writer


async def _redis_client(port: int, index: int) -> tuple[asyncio.StreamReader,
                                                          asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"*2\r\n$9\r\nSUBSCRIBE\r\n$5\r\nlobby\r\n")
    # the reply: *3 $9 subscribe $5 lobby :1 -> six lines
    for _ in range(6):
        if not await reader.readline():
            raise ConnectionError(f"client {index}: closed while subscribing")
    return reader, writer


async def _expect(reader: asyncio.StreamReader, marker: bytes) -> bool:
    while True:
        line = await reader.readline()
        if not line:
            return False
        if marker in line:
            return True


async def _storm(target: str, port: int, clients: int, concurrency: int,
                 pid: int) -> dict[str, Any]:
    connect = _chatkit_client if target == "chatkit" else _redis_client
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with gate:
            return await connect(port, index)

    rss_before = run._status_kib(pid, "VmRSS")
    cpu_before = run._cpu_seconds(pid)
    gen_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    conns = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(clients))),
                                   PHASE_TIMEOUT)
    connect_s = time.monotonic() - started
    connect_cpu = run._cpu_seconds(pid) - cpu_before
    gen_after = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.sleep(SETTLE_S)
    rss_after = run._status_kib(pid, "VmRSS")
    marker = b"one-for-all"
    sent = time.monotonic()
    if target == "chatkit":
        conns[0][1].write(json.dumps({"type": "msg", "room": "lobby",
                                      "text": marker.decode()}).encode() + b"\n")
    else:
        _, publisher = await asyncio.open_connection("127.0.0.1", port)
        publisher.write(b"*3\r\n$7\r\nPUBLISH\r\n$5\r\nlobby\r\n$11\r\n" + marker + b"\r\n")
    results = await asyncio.gather(
        *(asyncio.wait_for(_expect(reader, marker), 30) for reader, _ in conns),
        return_exceptions=True)
    received = sum(1 for r in results if r is True)
    all_s = time.monotonic() - sent
    # Everyone leaves at once (a network drops): how long until the server is idle again
    cpu_before_leave = run._cpu_seconds(pid)
    left = time.monotonic()
    for _, writer in conns:
        writer.close()
    if target == "redis":
        publisher.close()
    await asyncio.gather(*(writer.wait_closed() for _, writer in conns),
                         return_exceptions=True)
    leave_s, leave_cpu = await _settled(pid, left, cpu_before_leave)
    return {"target": target, "clients": clients, "concurrency": concurrency,
            "connect_s": connect_s, "server_cpu_connect_s": connect_cpu,
            "generator_cpu_connect_s": (gen_after.ru_utime + gen_after.ru_stime)
            - (gen_before.ru_utime + gen_before.ru_stime),
            "rss_kib_per_client": (rss_after - rss_before) / clients,
            "rss_mib": rss_after / 1024, "message_all_s": all_s,
            "received": received, "lost": clients - received,
            "leave_s": leave_s, "server_cpu_leave_s": leave_cpu}


async def _settled(pid: int, since: float, cpu_since: float) -> tuple[float, float]:
    """(seconds from `since` until the server used less than 2% of a core over 0.5 s, its CPU
    seconds meanwhile); bounded by PHASE_TIMEOUT."""
    last = run._cpu_seconds(pid)
    quiet_at = time.monotonic()
    while time.monotonic() - since < PHASE_TIMEOUT:
        await asyncio.sleep(0.5)
        now = run._cpu_seconds(pid)
        if now - last < 0.01:
            break
        last, quiet_at = now, time.monotonic()
    return quiet_at - since, last - cpu_since


def cell(target: str, clients: int, concurrency: int, workdir: Path) -> dict[str, Any]:
    with run.server(target, workdir, list(run.SERVE_ARGS)) as server:
        return asyncio.run(_storm(target, server.port, clients, concurrency, server.pid))


def report(records: list[dict[str, Any]]) -> str:
    lines = ["| people | target | connected and joined, s | server CPU s (connect) | "
             "generator CPU s | server MiB / KiB per person (settled) | one message to all, "
             "ms | all leave: server busy s (CPU s) | lost |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    keys = sorted({(r["clients"], r["target"]) for r in records},
                  key=lambda k: (k[0], k[1] != "chatkit"))
    for clients, target in keys:
        runs = [r for r in records if (r["clients"], r["target"]) == (clients, target)]

        def med(key: str, runs: list[dict[str, Any]] = runs) -> float:
            return statistics.median(r[key] for r in runs)

        spread = ""
        if len(runs) > 1:
            low, high = min(r["connect_s"] for r in runs), max(r["connect_s"] for r in runs)
            spread = f" ({low:.2f}..{high:.2f}, n={len(runs)})"
        lines.append(
            f"| {clients:,} | {target} | {med('connect_s'):.2f}{spread} | "
            f"{med('server_cpu_connect_s'):.2f} | {med('generator_cpu_connect_s'):.2f} | "
            f"{med('rss_mib'):.0f} / {med('rss_kib_per_client'):.1f} | "
            f"{med('message_all_s') * 1000:.0f} | {med('leave_s'):.1f} "
            f"({med('server_cpu_leave_s'):.1f}) | {sum(r['lost'] for r in runs)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1000,10000", help="People per cell, e.g. 1000,10000.")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=200,
                        help="Connections registering at once [default: 200; the server takes "
                             "256 unregistered by default].")
    parser.add_argument("--no-redis", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="Also write the records here.")
    parser.add_argument("--chatkit-root", type=Path, default=None, metavar="DIR",
                        help="Run the `chatkit` package in DIR (an older version, as in "
                             "benchmarks/ab.py) instead of this tree's.")
    args = parser.parse_args(argv)
    if args.chatkit_root is not None:
        run.CHATKIT_ROOT = args.chatkit_root.resolve()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    targets = ["chatkit"] if args.no_redis else ["chatkit", "redis"]
    records: list[dict[str, Any]] = []
    workdir = Path(tempfile.mkdtemp(prefix="chatkit-crowd-"))
    for round_no in range(args.rounds):
        for clients in (int(n) for n in args.clients.split(",")):
            for target in targets:  # interleaved: both see the same machine load
                home = workdir / f"{round_no}-{clients}-{target}"
                home.mkdir()
                record = cell(target, clients, args.concurrency, home)
                records.append(record)
                print(f"{clients:>6} {target:<8} joined in {record['connect_s']:.2f} s, "
                      f"{record['rss_kib_per_client']:.1f} KiB each, message to all in "
                      f"{record['message_all_s'] * 1000:.0f} ms, lost {record['lost']}, all "
                      f"left: busy {record['leave_s']:.1f} s, {record['server_cpu_leave_s']:.1f}"
                      " s CPU", flush=True)
    print()
    print(f"Command: `python benchmarks/crowd.py --clients {args.clients} --rounds "
          f"{args.rounds}`; load average before: {run.machine_info().get('load_before')}")
    print(report(records))
    if args.json is not None:
        args.json.write_text(json.dumps(records, indent=1))
    return 0 if all(r["lost"] == 0 for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
