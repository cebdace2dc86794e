"""Issue 12, "Honest failures": every failure says what really happened, with its own
documented exit status (docs/user-guide.md, "Exit statuses").

Real servers on 127.0.0.1 port 0, real CLI subprocesses."""

from __future__ import annotations

import http.server
import socket
import subprocess
import threading
from collections.abc import Iterator

import pytest

from chatkit import tls
from chatkit.client.connection import Connection
from chatkit.errors import ExitCode, ProtocolError, ServerRefusal
from chatkit.tls import KnownServers

from helpers import JsonClient, chatkit_cmd, cli_env

RUN_TIMEOUT = 20


def run(home: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(chatkit_cmd(*args), input=stdin, capture_output=True, text=True,
                          env=cli_env(home), timeout=RUN_TIMEOUT)


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one `Error:` line; stderr holds nothing else but notes (a pinned certificate)."""
    assert "Traceback" not in result.stderr, result.stderr
    assert "Usage:" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def known(tmp_path) -> KnownServers:
    return KnownServers(tmp_path / "known_servers.json")


@pytest.fixture
def holders() -> Iterator[list[JsonClient]]:
    clients: list[JsonClient] = []
    yield clients
    for client in clients:
        client.close()


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("use_tls", [True, False])
def test_past_max_per_address_the_client_shows_the_servers_reason(server_factory, holders,
                                                                   known, use_tls):
    server = server_factory(max_per_address=1)
    holders.append(JsonClient(server.port, "first"))
    with pytest.raises(ServerRefusal) as caught:
        Connection.open("127.0.0.1", server.port, "second", tls=use_tls, known_servers=known,
                        timeout=5)
    assert str(caught.value) == "refused by the server: too many connections from 127.0.0.1"
    assert caught.value.exit_code == ExitCode.REFUSED == 4


def test_a_full_server_is_named_as_the_reason(server_factory, holders, known):
    server = server_factory(max_clients=1)
    holders.append(JsonClient(server.port, "first"))
    with pytest.raises(ServerRefusal, match=r"^refused by the server: server full \(1 clients\)$"):
        Connection.open("127.0.0.1", server.port, "second", known_servers=known, timeout=5)


def test_an_address_locked_out_after_wrong_passwords_is_told_so(server_factory, holders, known):
    server = server_factory(password="right")
    for number in range(5):
        guesser = JsonClient(server.port)
        holders.append(guesser)
        guesser.send({"type": "hello", "version": 1, "nick": f"g{number}", "password": "x"})
        guesser.expect("error", code="bad_password")
    with pytest.raises(ServerRefusal, match="^refused by the server: too many wrong passwords"):
        Connection.open("127.0.0.1", server.port, "alice", password="right",
                        known_servers=known, timeout=5)


def test_send_and_join_past_the_cap_exit_4_with_the_reason(server_factory, holders,
                                                             chatkit_home):
    server = server_factory(max_per_address=1)
    holders.append(JsonClient(server.port, "first"))
    address = f"127.0.0.1:{server.port}"
    sent = run(chatkit_home, "send", "--host", address, "--nick", "ci", "hello")
    joined = run(chatkit_home, "join", address, "--nick", "bot", stdin="hello\n")
    for result in (sent, joined):
        assert result.returncode == 4, result.stderr
        assert error_line(result) == ("Error: refused by the server: too many connections "
                                      "from 127.0.0.1")
        assert "TLS" not in result.stderr


def test_no_tls_against_a_tls_only_server_says_drop_no_tls(server_factory, chatkit_home):
    server = server_factory(require_tls=True)
    result = run(chatkit_home, "send", "--host", f"127.0.0.1:{server.port}", "--nick", "ci",
                 "--no-tls", "hello")
    assert result.returncode == 4
    assert error_line(result) == ("Error: refused by the server: it accepts TLS connections "
                                  "only; drop --no-tls")


# --------------------------------------------------------------------------- not chatkit


class QuietHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def http_port() -> Iterator[int]:
    """A plain HTTP server on 127.0.0.1 (what `python -m http.server` would answer)."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), QuietHandler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


@pytest.mark.parametrize("use_tls", [True, False])
def test_an_http_server_does_not_speak_the_chatkit_protocol(http_port, known, use_tls):
    with pytest.raises(ProtocolError, match="does not speak the chatkit protocol") as caught:
        Connection.open("127.0.0.1", http_port, "alice", tls=use_tls, known_servers=known,
                        timeout=5)
    assert "(it answered " in str(caught.value)
    assert caught.value.exit_code == ExitCode.PROTOCOL == 5


def test_send_to_an_http_server_exits_5(http_port, chatkit_home):
    result = run(chatkit_home, "send", "--host", f"127.0.0.1:{http_port}", "--nick", "ci",
                 "hello")
    assert result.returncode == 5, result.stderr
    line = error_line(result)
    assert f"127.0.0.1:{http_port} does not speak the chatkit protocol" in line
    assert "--no-tls" not in line


def test_a_tiny_socket_server_saying_something_else_exits_5(chatkit_home):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer_once() -> None:
        sock, _ = listener.accept()
        with sock:
            sock.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
            sock.settimeout(5)
            try:
                sock.recv(4096)
            except OSError:
                pass

    thread = threading.Thread(target=answer_once)
    thread.start()
    try:
        result = run(chatkit_home, "send", "--host", f"127.0.0.1:{port}", "--nick", "ci", "x")
    finally:
        thread.join(10)
        listener.close()
    assert result.returncode == 5, result.stderr
    assert "does not speak the chatkit protocol (it answered 'SSH-2.0" in error_line(result)


def test_a_changed_certificate_has_its_own_exit_status(server_factory, tmp_path, chatkit_home):
    first = server_factory()
    port = first.port
    address = f"127.0.0.1:{port}"
    assert run(chatkit_home, "send", "--host", address, "--nick", "ci", "x").returncode == 0
    first.stop()
    cert, key = tmp_path / "other-cert.pem", tmp_path / "other-key.pem"
    tls.ensure_certificate(cert, key, "impostor", ["127.0.0.1"])
    server_factory(port=port, tls_cert=str(cert), tls_key=str(key))
    result = run(chatkit_home, "send", "--host", address, "--nick", "ci", "x")
    assert result.returncode == ExitCode.IDENTITY == 7, result.stderr
    assert "SERVER IDENTITY CHANGED" in error_line(result)


# --------------------------------------------------------------------------- closed output


def fill_history(port: int, count: int) -> None:
    writer = JsonClient(port, "writer")
    try:
        for number in range(count):
            writer.request({"type": "msg", "room": "lobby", "text": f"line {number}"})
    finally:
        writer.close()


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_join_into_head_exits_quietly(server_factory, chatkit_home, json_flag):
    """`chatkit join ... | head -2`, stdin still open (like `tail -f`): leaves at once, no
    BrokenPipeError traceback, the status `chatkit history | head` has."""
    server = server_factory()
    fill_history(server.port, 60)
    proc = subprocess.Popen(
        chatkit_cmd("join", f"127.0.0.1:{server.port}", "--nick", "bot", *json_flag),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=cli_env(chatkit_home))
    assert proc.stdout is not None and proc.stderr is not None and proc.stdin is not None
    try:
        first = [proc.stdout.readline() for _ in range(2)]
        assert all(first), first
        proc.stdout.close()  # what `head -2` does after its two lines
        status = proc.wait(timeout=15)
        errors = proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        proc.stdin.close()
        proc.stderr.close()
    assert "Traceback" not in errors and "BrokenPipe" not in errors, errors
    assert [line for line in errors.splitlines() if "pinned" not in line] == []
    assert status == 1  # as `chatkit history | head` (click's status for a closed output)


def test_send_with_stderr_closed_still_sends(server_factory, chatkit_home):
    """The first-use note goes to a closed stderr (`2>&1 | true`): the message still goes
    out, quietly."""
    server = server_factory()
    watcher = JsonClient(server.port, "watcher")
    try:
        proc = subprocess.Popen(
            chatkit_cmd("send", "--host", f"127.0.0.1:{server.port}", "--nick", "ci", "hi"),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=cli_env(chatkit_home))
        assert proc.stderr is not None
        proc.stderr.close()
        assert proc.wait(timeout=15) == 0
        assert watcher.expect("message", nick="ci")["text"] == "hi"
    finally:
        watcher.close()


# --------------------------------------------------------------------------- usage and wording


@pytest.mark.parametrize("args, says", [
    (["join", "--nik", "x"], "No such option '--nik'"),
    (["--bogus"], "No such option '--bogus'"),
    (["bogus"], "No such command 'bogus'"),
    (["serve", "--port", "abc"], "'abc' is not a whole number"),
    (["serve", "--no-tls", "--require-tls"], "--require-tls and --no-tls cannot be combined"),
    (["history", "--since", "someday"], "cannot read 'someday' as a time"),
    (["completion", "powershell"],
     "chatkit has no completion for 'powershell': it completes bash, zsh and fish"),
    (["join", "127.0.0.1:39371:1", "--nick", "x"], "bad address '127.0.0.1:39371:1'"),
])
def test_usage_errors_are_one_line(chatkit_home, args, says):
    result = run(chatkit_home, *args)
    assert result.returncode == ExitCode.USAGE == 2
    assert result.stderr.count("\n") == 1, result.stderr  # no Usage:/Try block
    line = error_line(result)
    assert says in line, line
    assert "integer range" not in line and "is not one of" not in line


def test_the_server_chooser_rewords_a_bad_answer():
    import click

    from chatkit.cli.options import ServerNumber

    chooser = ServerNumber(3)
    assert chooser.convert("2", None, None) == 2
    for answer in ("vm", "0", "4", ""):
        with pytest.raises(click.BadParameter) as caught:
            chooser.convert(answer, None, None)
        assert caught.value.message == (f"{answer!r} is not in the list: type a "
                                                 "number from 1 to 3, or a server's name")


def test_the_server_chooser_takes_a_name_or_an_address():
    import click

    from chatkit.cli.options import ServerNumber

    chooser = ServerNumber(3, ["office", "lab", "Office"], ["10.0.0.1:12345", "10.0.0.2:12345",
                                                            "10.0.0.3:12345"])
    assert chooser.convert("lab", None, None) == 2
    assert chooser.convert("LAB", None, None) == 2
    assert chooser.convert("10.0.0.3:12345", None, None) == 3
    with pytest.raises(click.BadParameter) as caught:
        chooser.convert("office", None, None)  # two are called that: the number tells them
    assert "2 servers are called 'office'" in caught.value.message


def test_an_unusable_certificate_says_why(tmp_path, chatkit_home):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    other_cert, other_key = tmp_path / "other-cert.pem", tmp_path / "other-key.pem"
    tls.ensure_certificate(cert, key, "mine", ["127.0.0.1"])
    tls.ensure_certificate(other_cert, other_key, "other", ["127.0.0.1"])
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    cases = [(junk, key, "junk.pem is not a PEM certificate"),
             (cert, junk, "junk.pem is not a PEM private key"),
             (cert, other_key, "other-key.pem is not the key of this certificate")]
    for cert_file, key_file, says in cases:
        result = run(chatkit_home, "serve", "--host", "127.0.0.1", "--port", "0",
                     "--no-discovery", "--tls-cert", str(cert_file), "--tls-key", str(key_file))
        line = error_line(result)
        assert says in line and "PEM lib" not in line and "_ssl.c" not in line, line
        assert result.returncode == 1


def test_history_that_matches_nothing_has_its_own_status(server_factory, tmp_path):
    db = tmp_path / "h.db"
    server = server_factory(db=str(db))
    writer = JsonClient(server.port, "alice")
    writer.request({"type": "msg", "room": "lobby", "text": "deploy done"})
    writer.close()
    server.stop()
    home = str(tmp_path / "home")
    found = run(home, "history", "--db", str(db), "--grep", "deploy")
    assert found.returncode == 0 and "deploy done" in found.stdout
    for args, says in ((["--grep", "zzz"], "--grep 'zzz'"),
                       (["--room", "nosuch"], "--room 'nosuch'")):
        result = run(home, "history", "--db", str(db), *args)
        assert result.returncode == ExitCode.NO_MATCH == 8, result.stderr
        assert result.stdout == ""
        assert result.stderr.strip() == f"chatkit: no stored message matches {says}"
