#!/usr/bin/env python3
"""The floor of a threaded Python chat server, measured beside Redis pub/sub and chatkit with
the same generator in the same run (issue 14: "if a target cannot be met with threads on
this machine, show the measurement that proves it").

    python benchmarks/threadfloor.py                  # 3 rounds of 10 s cells, ~13 minutes
    python benchmarks/threadfloor.py --rounds 1 --seconds 3 --servers redis,floor-inline,chatkit

The floor is a pub/sub server that speaks just enough Redis (SUBSCRIBE, PUBLISH) for
`chatkit bench --target redis`, built the way chatkit's server is built and doing nothing
else: one thread per connection reading and parsing, and the fan-out in Python. No message
log, no JSON, no validation, no nicknames, no rate limits, no TLS, no bounded backlogs (a
blocking `sendall` under a lock per subscriber), so a threaded chat server in CPython that
hands messages over the same way costs at least this much. Three ways to hand a message
over, the cheapest of which bounds what threads can do:

- `publisher` (chatkit's design): reader threads hand each PUBLISH to one publisher thread,
  which takes everything queued at once and sends each subscriber the whole batch in one
  `send`;
- `inline`: the reader thread that got the PUBLISH sends it to every subscriber itself (no
  hand-over; a chunk of several PUBLISHes goes out as one `send` per subscriber);
- `combining`: the reader thread queues the PUBLISH, then publishes everything queued itself
  unless another thread is doing so already (which looks at the queue again when it is done):
  no hand-over when it is quiet, batches under load.

`+log` adds what a server that stores a message before anyone sees it (chatkit's promise:
the sender's echo means stored) cannot leave out: each batch is written to chatkit's own
message log (chatkit.store.MessageStore, SQLite, one transaction per batch, as `chatkit
serve` does) before it is sent.

Cells: 100 clients with 10 senders at 200 messages/s and at full speed, as in
benchmarks/run.py; chatkit with its message log (the default) and without (`chatkit-nolog`:
`--no-history`). Every server binds 127.0.0.1 on a free port and is stopped by its PID;
every phase is bounded in time.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import queue
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from chatkit.store import MessageStore, StoredMessage  # noqa: E402

#: The most PUBLISHes the publisher thread takes as one batch (chatkit's MAX_BATCH)
MAX_BATCH = 512


# --------------------------------------------------------------------------- the floor server


class Subscriber:
    """One connection's outbound side: a lock, so batches never interleave."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()

    def send(self, data: bytes) -> None:
        with self.lock:
            try:
                self.sock.sendall(data)
            except OSError:
                pass  # gone: its reader thread sees the end and unsubscribes it


class FloorServer:
    """SUBSCRIBE/PUBLISH over RESP, a thread per connection (see the module docstring)."""

    def __init__(self, design: str, store: MessageStore | None) -> None:
        self.design = design
        self.store = store
        self._ids = itertools.count(1)
        self.channels: dict[bytes, list[Subscriber]] = {}
        self.lock = threading.Lock()
        self.queue: queue.SimpleQueue[tuple[bytes, bytes, bytes]] = queue.SimpleQueue()
        self.publishing = threading.Lock()  # `combining`: held by the thread publishing

    def serve(self, listener: socket.socket) -> None:
        if self.design == "publisher":
            threading.Thread(target=self._publisher, daemon=True).start()
        while True:
            conn, _ = listener.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._reader, args=(conn,), daemon=True).start()

    def _reader(self, conn: socket.socket) -> None:
        me = Subscriber(conn)
        buffer = b""
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data
                commands, buffer = _parse(buffer)
                replies: list[bytes] = []
                published: dict[bytes, list[tuple[bytes, bytes]]] = {}
                for command in commands:
                    name = command[0].upper()
                    if name == b"SUBSCRIBE":
                        for channel in command[1:]:
                            with self.lock:
                                self.channels.setdefault(channel, []).append(me)
                            replies.append(b"*3\r\n$9\r\nsubscribe\r\n$%d\r\n%s\r\n:1\r\n"
                                           % (len(channel), channel))
                    elif name == b"PUBLISH" and len(command) == 3:
                        channel, text = command[1], command[2]
                        published.setdefault(channel, []).append((text,
                            b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
                            % (len(channel), channel, len(text), text)))
                        with self.lock:
                            count = len(self.channels.get(channel, ()))
                        replies.append(b":%d\r\n" % count)
                    else:
                        replies.append(b"-ERR unknown command\r\n")
                for channel, messages in published.items():
                    if self.design == "inline":
                        self._store(channel, [text for text, _ in messages])
                        self._fan_out(channel, b"".join(wire for _, wire in messages))
                    else:
                        for text, wire in messages:
                            self.queue.put((channel, text, wire))
                if published and self.design == "combining":
                    self._combine()
                if replies:
                    me.send(b"".join(replies))
        finally:
            with self.lock:
                for members in self.channels.values():
                    if me in members:
                        members.remove(me)
            conn.close()

    def _publisher(self) -> None:
        while True:
            self._publish([self.queue.get()])

    def _combine(self) -> None:
        """Publish what is queued in this thread, unless another thread is publishing: that
        one looks at the queue again after it lets go of the lock."""
        while not self.queue.empty():
            if not self.publishing.acquire(blocking=False):
                return
            try:
                while True:
                    try:
                        first = self.queue.get_nowait()
                    except queue.Empty:
                        break
                    self._publish([first])
            finally:
                self.publishing.release()

    def _publish(self, batch: list[tuple[bytes, bytes, bytes]]) -> None:
        while len(batch) < MAX_BATCH:
            try:
                batch.append(self.queue.get_nowait())
            except queue.Empty:
                break
        if self.store is not None:
            now = time.time()
            self.store.append([StoredMessage(next(self._ids), channel.decode(), "message",
                                             "floor", None, text.decode(), now)
                               for channel, text, _ in batch])
        runs: dict[bytes, list[bytes]] = {}
        for channel, _, wire in batch:
            runs.setdefault(channel, []).append(wire)
        for channel, messages in runs.items():
            self._fan_out(channel, b"".join(messages))

    def _store(self, channel: bytes, texts: list[bytes]) -> None:
        if self.store is not None:
            now = time.time()
            self.store.append([StoredMessage(next(self._ids), channel.decode(), "message",
                                             "floor", None, text.decode(), now)
                               for text in texts])

    def _fan_out(self, channel: bytes, data: bytes) -> None:
        with self.lock:
            members = list(self.channels.get(channel, ()))
        for member in members:
            member.send(data)


def _parse(buffer: bytes) -> tuple[list[list[bytes]], bytes]:
    """Complete RESP arrays of bulk strings at the start of `buffer`, and the rest."""
    commands: list[list[bytes]] = []
    at = 0
    while True:
        end = buffer.find(b"\r\n", at)
        if end < 0 or buffer[at:at + 1] != b"*":
            return commands, buffer[at:]
        count = int(buffer[at + 1:end])
        pos = end + 2
        parts: list[bytes] = []
        for _ in range(count):
            end = buffer.find(b"\r\n", pos)
            if end < 0:
                return commands, buffer[at:]
            size = int(buffer[pos + 1:end])
            start = end + 2
            if len(buffer) < start + size + 2:
                return commands, buffer[at:]
            parts.append(buffer[start:start + size])
            pos = start + size + 2
        commands.append(parts)
        at = pos


def _serve_main(design: str) -> None:
    sys.setswitchinterval(0.1)  # as `chatkit serve`
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    with tempfile.TemporaryDirectory() as tmp:
        store = MessageStore(Path(tmp) / "messages.db") if design.endswith("+log") else None
        print(listener.getsockname()[1], flush=True)
        FloorServer(design.removesuffix("+log"), store).serve(listener)


# --------------------------------------------------------------------------- the measurement


@contextmanager
def _floor(design: str) -> Iterator[Any]:
    import subprocess

    import run

    proc = subprocess.Popen([sys.executable, __file__, "--serve", design],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    try:
        port = int(proc.stdout.readline() or b"0")
        if not port:
            raise RuntimeError("the floor server did not start")
        yield run.RunningServer("redis", proc, port)
    finally:
        proc.kill()
        proc.wait(10)


def _cell(server: str, cell: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """One benchmark cell against a fresh server: chatkit, redis or floor-DESIGN."""
    import run

    if server.startswith("floor-"):
        with _floor(server.removeprefix("floor-")) as running:
            record = _measure(run, running, cell)
    else:
        target, _, variant = server.partition("-")
        serve_args = [*run.SERVE_ARGS, *(["--no-history"] if variant == "nolog" else [])]
        with run.server(target, workdir, serve_args) as running:
            record = _measure(run, running, cell)
    record["server"] = server
    return record


def _measure(run: Any, running: Any, cell: dict[str, Any]) -> dict[str, Any]:
    from chatkit.bench import BenchConfig, run_bench

    marks: dict[str, float] = {}
    rate = cell.get("rate")
    result = run_bench(
        BenchConfig(host="127.0.0.1", port=running.port, target=running.target,
                    processes=run.generator_processes("auto", cell["clients"], rate), **cell),
        on_connected=lambda: marks.__setitem__("start", run._cpu_seconds(running.pid)),
        on_finished=lambda: marks.__setitem__("end", run._cpu_seconds(running.pid)))
    record = result.to_dict()
    deliveries = record["deliveries"] or 1
    record["server_us_per_delivery"] = (marks["end"] - marks["start"]) / deliveries * 1e6
    return record


CELLS = {
    "100c x 200/s": {"clients": 100, "senders": 10, "rate": 200.0},
    "100c x max": {"clients": 100, "senders": 10},
}
DESIGNS = ("inline", "publisher", "combining")
#: chatkit-nolog: `chatkit serve --no-history` (no message log, like the floors without +log)
SERVERS = ("redis", *(f"floor-{design}{log}" for design in DESIGNS for log in ("", "+log")),
           "chatkit", "chatkit-nolog")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", choices=[f"{design}{log}" for design in DESIGNS
                                            for log in ("", "+log")], help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help="Which, in this order (default: all).")
    parser.add_argument("--json", type=Path, default=None, help="Also write the records here.")
    args = parser.parse_args(argv)
    if args.serve:
        _serve_main(args.serve)
        return 0
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for label, cell in CELLS.items():
                for server in args.servers.split(","):
                    record = _cell(server, {**cell, "duration": args.seconds}, Path(tmp))
                    record.update(cell=label, round=round_)
                    records.append(record)
                    lat = record["latency_ms"] or {}
                    print(f"{label:<13} {server:<16} {record['deliveries_per_s']:>12,.0f}/s  "
                          f"p99 {lat.get('p99', 0):7.2f} ms  "
                          f"{record['server_us_per_delivery']:.2f} µs/delivery  "
                          f"lost {record['lost']} dup {record['duplicated']} "
                          f"reord {record['reordered']}", flush=True)
    print()
    print(report(records, args))
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))
    clean = all(r["lost"] == r["duplicated"] == r["reordered"] == r["errors"] == 0
                and r["deliveries"] for r in records)
    return 0 if clean else 1


def _median(records: list[dict[str, Any]], label: str, server: str, key: str) -> float:
    values = [r[key] if key != "p99" else (r["latency_ms"] or {}).get("p99", 0.0)
              for r in records if r["cell"] == label and r["server"] == server]
    return statistics.median(values)


def report(records: list[dict[str, Any]], args: argparse.Namespace) -> str:
    servers = args.servers.split(",")
    lines = [f"Command: `python benchmarks/threadfloor.py --rounds {args.rounds} --seconds "
             f"{args.seconds:g}`; {time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} "
             f"cores, load average before the last cell {os.getloadavg()[0]:.2f}. Medians of "
             f"{args.rounds} interleaved rounds.", "",
             "| cell | server | deliveries/s | × Redis | p99 ms | server µs per delivery "
             "| × Redis | lost·dup·reordered |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for label in CELLS:
        for server in servers:
            rate = _median(records, label, server, "deliveries_per_s")
            cpu = _median(records, label, server, "server_us_per_delivery")
            if "redis" in servers:  # the ratios need it
                redis_rate = _median(records, label, "redis", "deliveries_per_s")
                redis_cpu = _median(records, label, "redis", "server_us_per_delivery")
                rate_ratio, cpu_ratio = f"{rate / redis_rate:.2f}", f"{cpu / redis_cpu:.2f}"
            else:
                rate_ratio = cpu_ratio = "–"
            bad = sum(r["lost"] + r["duplicated"] + r["reordered"] for r in records
                      if r["cell"] == label and r["server"] == server)
            lines.append(f"| {label} | {server} | {rate:,.0f} | {rate_ratio} | "
                         f"{_median(records, label, server, 'p99'):.2f} | {cpu:.2f} | "
                         f"{cpu_ratio} | {bad} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
