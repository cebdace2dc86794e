"""Issue 13, item 6: a server out of file descriptors. Before: the accept thread spun at 100% CPU
logging `accept failed: Too many open files` (4.6 MB/s), and one client refused in a loop wrote
503 KiB/s of WARNINGs. Now `chatkit serve` fits --max-clients to the descriptor limit (and says
so), the door backs off on EMFILE, and a repeated log line is written once per 10 s."""

from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from helpers import chatkit_cmd, cli_env, wait_for

#: a server whose descriptor limit (64) is far below its --max-clients (16,384): what a
#: `chatkit serve` started by an older chatkit, or with descriptors used elsewhere, meets
_LOW_LIMIT_SERVER = textwrap.dedent("""
    import logging, resource, sys, threading
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    logging.basicConfig(stream=sys.stderr, level=logging.INFO)
    from chatkit.server import Server, ServerConfig
    server = Server(ServerConfig(host="127.0.0.1", port=0, name="emfile", tls=False,
                                 max_per_address=0, rate_limit=0, sniff_seconds=0.1))
    server.start()
    print(server.port, flush=True)
    threading.Event().wait(60)
""")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _connect_many(port: int, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        socks.append(sock)
    return socks


def _read_stdout(proc: subprocess.Popen, until: str, timeout: float = 10.0) -> str:
    """What the process printed on stdout until `until` appeared (or the deadline passed)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    text = b""
    deadline = time.monotonic() + timeout
    while until.encode() not in text and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            text += chunk
    return text.decode()


def _end(proc: subprocess.Popen, socks: list[socket.socket]) -> None:
    """Close the test's connections and kill its server (by its own PID)."""
    for sock in socks:
        sock.close()
    proc.kill()
    proc.wait(10)
    if proc.stdout:
        proc.stdout.close()


def test_accept_out_of_descriptors_backs_off_instead_of_spinning(tmp_path):
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-c", _LOW_LIMIT_SERVER],
                                stdout=subprocess.PIPE, stderr=log_file, text=True,
                                env=cli_env(str(tmp_path / "home")))
    socks: list[socket.socket] = []
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        # More connections than the server has descriptors: the kernel queues the rest
        # (listen backlog 1024) and accept() fails with EMFILE for each try.
        socks = _connect_many(port, 80)
        wait_for(lambda: "Too many open files" in log_path.read_text(errors="replace"),
                 message="accept to fail with EMFILE")
        before, started = _cpu_seconds(proc.pid), time.monotonic()
        size_before = log_path.stat().st_size
        time.sleep(1.5)  # measuring an interval: the server must stay idle during it
        used = (_cpu_seconds(proc.pid) - before) / (time.monotonic() - started)
        grown = log_path.stat().st_size - size_before
        assert used < 0.3, f"the accept thread spins: {used:.0%} of a core"
        assert grown < 2000, f"the log grew by {grown} bytes in 1.5 s"
        log_text = log_path.read_text(errors="replace")
        assert log_text.count("accept failed") <= 2, log_text[-2000:]
        # Descriptors freed: the queued connections are accepted again.
        for sock in socks[:30]:
            sock.close()
        probe = socks[-1]
        probe.settimeout(5)
        probe.sendall(b"\r\n")
        assert probe.recv(100), "a queued connection was never served"
    finally:
        _end(proc, socks)


def test_serve_fits_max_clients_to_the_descriptor_limit_and_logs_refusals_once(tmp_path):
    log_path = tmp_path / "serve.log"
    command = " ".join(chatkit_cmd("serve", "--host", "127.0.0.1", "--port", "0",
                                   "--no-discovery", "--no-history", "--no-tls",
                                   "--max-per-address", "0", "--rate-limit", "0"))
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(["bash", "-c", f"ulimit -n 64 && exec {command}"],
                                stdout=subprocess.PIPE, stderr=log_file,
                                env=cli_env(str(tmp_path / "home")))
    socks: list[socket.socket] = []
    try:
        text = _read_stdout(proc, until="open files")
        port = int(re.search(r"127\.0\.0\.1:(\d+)", text).group(1))  # type: ignore[union-attr]
        match = re.search(r"at most (\d+) clients at once: --max-clients 16384 does not fit "
                          r"the limit of 64 open files", text)
        assert match, text
        fitted = int(match.group(1))
        assert 1 <= fitted < 64
        socks = _connect_many(port, fitted)
        # One client over the limit, retrying in a loop: told "server full" each time, logged
        # once.
        for _ in range(200):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as extra:
                extra.settimeout(5)
                assert extra.recv(200).startswith(b"!!! server full")
        log_text = log_path.read_text(errors="replace")
        assert "Too many open files" not in log_text
        assert log_text.count("refusing") == 1, log_text[-2000:]
    finally:
        _end(proc, socks)
