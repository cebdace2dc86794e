#!/usr/bin/env python3
"""The floor of a Python fan-out: what one Python thread spends per delivery when it does
nothing but send one message to each of N TCP connections (non-blocking `send`, no locks, no
encoding, no storage), at the benchmark's human rate or as fast as it can.

    python benchmarks/floor.py                    # 100 connections, 200 msg/s and max, 5 s each

chatkit's server does this plus its real work (the message log, the hub, a lock per output,
backlogs, TLS), so its CPU per delivery cannot go below this line while the fan-out loop is
Python. Compare it with Redis's CPU per delivery in the same cell (benchmarks/run.py): if the
floor is already above 1.5x Redis, that target needs the fan-out out of Python, not a faster
Python loop. The receiver is a separate process reading every connection (asyncio), like the
benchmark's generator; loopback only, bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import sys
import time

MESSAGE = b'{"type":"message","room":"bench","nick":"c1","text":"' + b"x" * 64 + b'"}\n'


def _receiver(port: int, clients: int, ready: multiprocessing.synchronize.Event,
              stop: multiprocessing.synchronize.Event) -> None:
    async def main() -> None:
        streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(clients)]
        ready.set()

        async def drain(reader: asyncio.StreamReader) -> None:
            while await reader.read(65536):
                pass

        tasks = [asyncio.ensure_future(drain(reader)) for reader, _ in streams]
        while not stop.is_set():
            await asyncio.sleep(0.05)
        for _, writer in streams:
            writer.close()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


def measure(clients: int, rate: float | None, seconds: float) -> dict[str, float]:
    listener = socket.create_server(("127.0.0.1", 0), backlog=clients)
    port = listener.getsockname()[1]
    ready, stop = multiprocessing.Event(), multiprocessing.Event()
    receiver = multiprocessing.Process(target=_receiver, args=(port, clients, ready, stop))
    receiver.start()
    socks = [listener.accept()[0] for _ in range(clients)]
    ready.wait(30)
    flags = getattr(socket, "MSG_DONTWAIT", 0)
    sent = messages = 0
    cpu0, start = time.thread_time(), time.monotonic()
    deadline = start + seconds
    while time.monotonic() < deadline:
        if rate is not None:
            due = start + messages / rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        for sock in socks:
            try:
                sent += sock.send(MESSAGE, flags) == len(MESSAGE)
            except BlockingIOError:
                pass
        messages += 1
    cpu = time.thread_time() - cpu0
    stop.set()
    for sock in socks:
        sock.close()
    listener.close()
    receiver.join(30)
    return {"messages": messages, "deliveries": sent,
            "us_per_delivery": cpu / max(sent, 1) * 1e6,
            "deliveries_per_s": sent / (time.monotonic() - start)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} cores; {args.clients} "
          "connections; one thread sending; CPU of that thread only")
    for rate in (200.0, None):
        result = measure(args.clients, rate, args.seconds)
        mode = f"{rate:g} msg/s" if rate else "max"
        print(f"{mode:>10}: {result['us_per_delivery']:.2f} µs of CPU per delivery, "
              f"{result['deliveries_per_s']:,.0f} deliveries/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
