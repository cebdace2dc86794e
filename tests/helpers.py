"""Test clients that speak the real protocol over real sockets, with deadlines everywhere."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

DEFAULT_TIMEOUT = 5.0


class LineClient:
    """A raw TCP client that reads lines with a deadline."""

    def __init__(self, port: int, host: str = "127.0.0.1", *, rcvbuf: int | None = None
                 ) -> None:
        if rcvbuf is None:
            self.sock = socket.create_connection((host, port), timeout=DEFAULT_TIMEOUT)
        else:  # a small receive buffer, set before connecting so the window stays small
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(DEFAULT_TIMEOUT)
            try:
                self.sock.connect((host, port))
            except BaseException:
                self.sock.close()
                raise
        self.buffer = b""
        self.lines: list[str] = []  # every line received, in order

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_line(self, timeout: float = DEFAULT_TIMEOUT) -> str | None:
        """The next line (without ending), or None at EOF; raises AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line within {timeout}s; buffer={self.buffer!r}")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                return None
            if not data:
                if self.buffer:
                    line, self.buffer = self.buffer, b""
                    return line.decode()
                return None
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        text = line.decode().rstrip("\r")
        self.lines.append(text)
        return text

    def read_until(self, predicate: Callable[[str], bool], timeout: float = DEFAULT_TIMEOUT
                   ) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.read_line(max(0.01, deadline - time.monotonic()))
            if line is None:
                raise AssertionError(f"connection closed; lines so far: {self.lines}")
            if predicate(line):
                return line

    def read_until_eof(self, timeout: float = DEFAULT_TIMEOUT) -> list[str]:
        lines = []
        while (line := self.read_line(timeout)) is not None:
            lines.append(line)
        return lines

    def read_until_prompt(self, prompt: bytes, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """Read until the unfinished line `prompt` (e.g. b"Nickname: ") arrives; drop it,
        leave what came before in the buffer (for `read_line`) and return that too."""
        deadline = time.monotonic() + timeout
        while not self.buffer.endswith(prompt):
            if time.monotonic() > deadline:
                raise AssertionError(f"no {prompt!r} prompt; buffer={self.buffer!r}")
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            assert data, f"closed before the prompt; buffer={self.buffer!r}"
            self.buffer += data
        self.buffer = self.buffer[: -len(prompt)]
        return self.buffer

    def close(self) -> None:
        self.sock.close()


class TextClient(LineClient):
    """A person with `nc`: registers by typing a nickname."""

    def __init__(self, port: int, nick: str | None = None) -> None:
        super().__init__(port)
        self.nick = nick
        if nick is not None:
            try:
                self.expect_prompt()
                self.say(nick)
                self.read_until(lambda line: "you joined lobby" in line)
            except BaseException:
                self.close()
                raise

    def expect_prompt(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.read_until_prompt(b"Nickname: ", timeout)

    def say(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def expect(self, text: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        return self.read_until(lambda line: text in line, timeout)


class JsonClient(LineClient):
    """A program speaking JSON mode."""

    def __init__(self, port: int, nick: str | None = None, room: Any = "lobby", *,
                 rcvbuf: int | None = None, host: str = "127.0.0.1") -> None:
        super().__init__(port, host, rcvbuf=rcvbuf)
        self.welcome: dict[str, Any] | None = None
        self.frames: list[dict[str, Any]] = []
        if nick is not None:
            try:
                self.send({"type": "hello", "version": 1, "nick": nick, "room": room})
                self.welcome = self.expect("welcome")
                if room is not None:
                    self.expect("joined")
                    self.expect("history_end")  # always follows `joined`
            except BaseException:
                self.close()  # no socket left for the garbage collector to warn about
                raise

    def send(self, frame: dict[str, Any]) -> None:
        self.sock.sendall(json.dumps(frame).encode() + b"\n")

    def read_frame(self, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any] | None:
        line = self.read_line(timeout)
        if line is None:
            return None
        frame = json.loads(line)
        self.frames.append(frame)
        return frame

    def expect(self, kind: str, timeout: float = DEFAULT_TIMEOUT, **fields: Any
               ) -> dict[str, Any]:
        """Read frames until one of `kind` whose fields match; return it."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.read_frame(max(0.01, deadline - time.monotonic()))
            if frame is None:
                raise AssertionError(f"closed while waiting for {kind}; got {self.frames}")
            if frame["type"] == kind and all(frame.get(k) == v for k, v in fields.items()):
                return frame

    def request(self, frame: dict[str, Any], timeout: float = DEFAULT_TIMEOUT
                ) -> dict[str, Any]:
        """Send with a ref; return the first frame carrying it (reply, echo or error)."""
        ref = f"t{time.monotonic_ns()}"
        self.send({**frame, "ref": ref})
        deadline = time.monotonic() + timeout
        while True:
            answer = self.read_frame(max(0.01, deadline - time.monotonic()))
            assert answer is not None, f"closed while waiting for ref {ref}"
            if answer.get("ref") == ref:
                return answer


def wait_for(predicate: Callable[[], Any], timeout: float = DEFAULT_TIMEOUT,
             message: str = "condition") -> Any:
    """Poll `predicate` until truthy, with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(0.01)


def free_udp_port() -> int:
    """A UDP port nothing on 127.0.0.1 uses now (for a test's own discovery port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def chatkit_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "chatkit", *args]


def cli_env(home: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["CHATKIT_HOME"] = home
    env["CHATKIT_BROADCAST"] = "127.255.255.255"  # discovery never leaves loopback in tests
    env.pop("CHATKIT_NICK", None)
    env.update(extra)
    return env


class ServeProcess:
    """A real `chatkit serve --host 127.0.0.1 --port 0` subprocess."""

    def __init__(self, proc: subprocess.Popen, port: int, banner: str) -> None:
        self.proc = proc
        self.port = port
        self.banner = banner

    @classmethod
    def start(cls, extra_args: list[str], env_home: str, port: int = 0,
              timeout: float = 10.0) -> ServeProcess:
        os.makedirs(env_home, exist_ok=True)
        proc = subprocess.Popen(
            chatkit_cmd("serve", "--host", "127.0.0.1", "--port", str(port), "--name", "testsrv",
                        *extra_args),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(env_home))
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        banner = proc.stdout.readline()  # bounded: the process is killed below on failure
        match = re.search(r"127\.0\.0\.1:(\d+)", banner)
        if not match or time.monotonic() > deadline:
            proc.kill()
            _, err = proc.communicate(timeout=5)
            raise AssertionError(f"chatkit serve did not start: {banner!r} {err!r}")
        return cls(proc, int(match.group(1)), banner)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()
        return self.proc.returncode


class Relay:
    """A TCP relay in front of the server. `cut()` closes the client side of every pair while
    the server side stays open and silent: what the server sees when a laptop goes to sleep
    or its Wi-Fi drops (a half-open connection it only notices minutes later)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.cut_clients: set[socket.socket] = set()
        self.threads = [threading.Thread(target=self._accept, name="relay", daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.pairs.append((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=self._pump, args=(src, dst), name="relay",
                                          daemon=True)
                thread.start()
                self.threads.append(thread)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data or src in self.cut_clients or dst in self.cut_clients:
                break
            try:
                dst.sendall(data)
            except OSError:
                break
        if src not in self.cut_clients and dst not in self.cut_clients:
            try:
                dst.shutdown(socket.SHUT_WR)  # an ordinary close: pass it on
            except OSError:
                pass

    def cut(self) -> None:
        for client, _ in list(self.pairs):
            if client in self.cut_clients:
                continue  # cut before
            self.cut_clients.add(client)
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # the client closed it first

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept(); close() alone does not
        except OSError:
            pass
        self.listener.close()
        self.threads[0].join(5)
        for pair in self.pairs:
            for sock in pair:
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # wakes a pump blocked in recv
                except OSError:
                    pass
                sock.close()
        for thread in self.threads[1:]:
            thread.join(5)


class RedisServer:
    """A real `redis-server` of the test's own on a free loopback port, data in `workdir`
    (`appendonly` when durability is the point). Stopped by PID."""

    def __init__(self, workdir: str, *, appendonly: bool = False, port: int = 0) -> None:
        self.workdir, self.appendonly = workdir, appendonly
        self.port = port or _free_tcp_port()
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        os.makedirs(self.workdir, exist_ok=True)
        with open(os.path.join(self.workdir, "redis.log"), "ab") as out:
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always",
                 "--dir", self.workdir, "--protected-mode", "yes"],
                stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as probe:
                    probe.sendall(b"PING\r\n")
                    if probe.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise AssertionError("redis-server did not start")
            time.sleep(0.02)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def _free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
