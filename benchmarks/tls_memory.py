#!/usr/bin/env python3
"""Where a TLS connection's memory goes on the server: a model of one idle reader thread.

    python benchmarks/tls_memory.py [N]

Measures the resident memory (VmRSS) per connection of N idle threads, each holding what a
chatkit reader thread holds: nothing (the thread alone); a server-side `TlsChannel` whose
handshake ran in that thread (what `chatkit serve` does); and one whose handshake ran in another
thread (the stack pages OpenSSL touches during a handshake stay resident in the thread that ran
it). Each mode runs in a fresh interpreter. Socket pairs only: no network traffic at all.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

MODES = ("thread only", "TLS, handshake in the thread", "TLS, handshake elsewhere")


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))


def measure(mode: str, count: int) -> float:
    """KiB of RSS per idle connection in this process (run once per process)."""
    from chatkit.server import Server, ServerConfig
    from chatkit.tls import TlsChannel, client_context

    server = Server(ServerConfig(host="127.0.0.1", port=0, discovery=False))
    server._setup_tls()  # the certificate and context `chatkit serve` would use
    server_context, client = server.tls_context, client_context()
    release = threading.Event()
    ready = threading.Semaphore(0)
    keep: list[object] = []

    def shake_client(sock: socket.socket) -> None:
        TlsChannel(client, server_side=False, server_hostname="localhost").handshake(
            sock, time.monotonic() + 10)

    def reader(sock: socket.socket | None, channel: object | None) -> None:
        if sock is not None:  # the handshake in this thread, as chatkit serve does it
            channel = TlsChannel(server_context, server_side=True)
            channel.handshake(sock, time.monotonic() + 10)  # type: ignore[union-attr]
        keep.append(channel)
        ready.release()
        release.wait(60)

    pairs = [socket.socketpair() for _ in range(count)] if mode != MODES[0] else []
    threads: list[threading.Thread] = []
    base = _rss_kib()
    try:
        for index in range(count):
            args: tuple[object, object] = (None, None)
            client_thread = None
            if pairs:
                ours, theirs = pairs[index]
                client_thread = threading.Thread(target=shake_client, args=(theirs,))
                client_thread.start()
                if mode == MODES[1]:
                    args = (ours, None)
                else:
                    channel = TlsChannel(server_context, server_side=True)
                    channel.handshake(ours, time.monotonic() + 10)
                    args = (None, channel)
            thread = threading.Thread(target=reader, args=args)
            thread.start()
            threads.append(thread)
            if client_thread is not None:
                client_thread.join(10)
        for _ in range(count):
            ready.acquire(timeout=10)
        return (_rss_kib() - base) / count
    finally:
        release.set()
        for thread in threads:
            thread.join(10)
        for ours, theirs in pairs:
            ours.close()
            theirs.close()


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 500
    if len(sys.argv) > 2:  # child: one mode
        print(f"{measure(MODES[int(sys.argv[2])], count):.1f}")
        return 0
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, CHATKIT_HOME=home)
        for index, mode in enumerate(MODES):
            out = subprocess.run([sys.executable, __file__, str(count), str(index)], env=env,
                                 capture_output=True, text=True, timeout=300, check=True).stdout
            print(f"{mode:<30} {float(out):6.1f} KiB per connection ({count} connections)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
