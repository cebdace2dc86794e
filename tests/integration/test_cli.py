"""The `chatkit` command: CliRunner for the click layer, real subprocesses for serve and send."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading

import pytest
from click.testing import CliRunner

from chatkit import __version__
from chatkit.cli import cli

from helpers import JsonClient, ServeProcess, TextClient, chatkit_cmd, cli_env, wait_for

RUN_TIMEOUT = 20


def run(home: str, *args: str, stdin: str | None = None, **env: str
        ) -> subprocess.CompletedProcess:
    return subprocess.run(chatkit_cmd(*args), input=stdin, capture_output=True, text=True,
                          env=cli_env(home, **env), timeout=RUN_TIMEOUT)


def one_line_error(result) -> str:
    # other notes may precede it (e.g. a TLS certificate pinned on first use); the error is
    # exactly one line
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


# --------------------------------------------------------------------------- CliRunner


def test_version():
    result = CliRunner().invoke(cli, ["--version"], prog_name="chatkit")
    assert result.exit_code == 0
    assert result.output.strip() == f"chatkit, version {__version__}"


def test_help_lists_commands():
    result = CliRunner().invoke(cli, ["--help"], prog_name="chatkit")
    assert result.exit_code == 0
    for command in ("serve", "join", "discover", "send", "completion"):
        assert command in result.output
    for command in ("serve", "join", "discover", "send", "completion"):
        sub = CliRunner().invoke(cli, [command, "--help"], prog_name="chatkit")
        assert sub.exit_code == 0, (command, sub.output)
        assert "Usage: chatkit " + command in sub.output


@pytest.mark.parametrize("shell, marker", [
    ("bash", "complete -o nosort -F _chatkit_completion chatkit"),
    ("zsh", "#compdef chatkit"),
    ("fish", "complete --no-files --command chatkit"),
])
def test_completion_scripts(shell, marker):
    result = CliRunner().invoke(cli, ["completion", shell], prog_name="chatkit")
    assert result.exit_code == 0
    assert marker in result.output
    assert "_CHATKIT_COMPLETE" in result.output


def test_completion_unknown_shell():
    result = CliRunner().invoke(cli, ["completion", "tcsh"], prog_name="chatkit")
    assert result.exit_code == 2


def complete(home: str, words: str, cword: int) -> list[str]:
    result = subprocess.run(
        chatkit_cmd(), capture_output=True, text=True, timeout=RUN_TIMEOUT,
        env=cli_env(home, _CHATKIT_COMPLETE="bash_complete", COMP_WORDS=words,
                    COMP_CWORD=str(cword)))
    assert result.returncode == 0, result.stderr
    return [line.split(",", 1)[1] for line in result.stdout.splitlines()]


def test_option_values_complete(chatkit_home):
    assert complete(chatkit_home, "chatkit serve --log-level ", 3) == [
        "debug", "info", "warning", "error"]
    assert complete(chatkit_home, "chatkit serve --log-level w", 3) == ["warning"]
    assert complete(chatkit_home, "chatkit completion ", 2) == ["bash", "zsh", "fish"]
    commands = complete(chatkit_home, "chatkit ", 1)
    assert {"serve", "join", "discover", "send", "completion"} <= set(commands)
    assert "--port" in complete(chatkit_home, "chatkit serve --", 2)


@pytest.mark.parametrize("args", [["join", "--nick", "x"], ["send", "--nick", "x", "hi"]])
def test_without_host_and_no_server_found_is_one_line_error(args):
    # Without a host the command discovers; probes go to loopback only (to a port no test
    # server uses), and finding nothing is exit status 6 with advice.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as unused:
        unused.bind(("127.0.0.1", 0))
        port = str(unused.getsockname()[1])
    result = CliRunner().invoke(cli, [*args, "--broadcast", "127.255.255.255",
                                      "--discovery-port", port], prog_name="chatkit")
    assert result.exit_code == 6
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: no chatkit server answered")
    assert "Traceback" not in result.output


def test_discover_usage_error_is_one_line():
    # `discover` without options broadcasts on the LAN, which tests never do; a usage error
    # is checked instead.
    result = CliRunner().invoke(cli, ["discover", "--timeout", "0"], prog_name="chatkit")
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_python_m_chatkit_version(chatkit_home):
    result = subprocess.run([sys.executable, "-m", "chatkit", "--version"], capture_output=True,
                            text=True, env=cli_env(chatkit_home), timeout=RUN_TIMEOUT)
    assert result.returncode == 0
    assert result.stdout.strip() == f"chatkit, version {__version__}"


# --------------------------------------------------------------------------- chatkit serve


def test_serve_banner(serve_process):
    banner = serve_process.banner.strip()
    assert "testsrv" in banner
    assert f"127.0.0.1:{serve_process.port}" in banner


@pytest.mark.parametrize("flags, says, never", [
    ([], ["`chatkit join 127.0.0.1:{port}`", "`nc 127.0.0.1 {port}`",
          "messages stored in {db}", "TLS certificate fingerprint SHA256:",
          "discovery off (--no-discovery)"], ["refused"]),
    (["--require-tls", "--no-history"], ["nc/telnet are refused: --require-tls",
                                         "messages kept in memory only"], ["`nc "]),
])
def test_serve_banner_says_how_to_join_and_where_messages_go(tmp_path, flags, says, never):
    db = tmp_path / "home" / "data" / "messages.db"
    proc = ServeProcess.start(["--no-discovery", *flags], env_home=str(tmp_path / "home"))
    try:
        assert proc.proc.stdout is not None and proc.proc.stderr is not None
        out = proc.banner
        for _ in range(10):  # bounded; the discovery line ends this banner
            line = proc.proc.stdout.readline()
            out += line
            if not line or "discovery" in line:
                break
        proc.proc.send_signal(signal.SIGINT)
        proc.proc.wait(10)  # the output is small: it fits in the pipes
        out += proc.proc.stdout.read()
        err = proc.proc.stderr.read()
    finally:
        proc.stop()
    for text in says:
        assert text.format(port=proc.port, db=db) in out, out
    for text in never:
        assert text not in out, out
    assert "listening" not in err  # said once, in the banner, not again by the log
    assert len(set(out.splitlines())) == len(out.splitlines())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_gracefully_on_signal(tmp_path, sig):
    proc = ServeProcess.start(["--no-discovery"], env_home=str(tmp_path / "home"))
    try:
        alice = JsonClient(proc.port, "alice")
        tom = TextClient(proc.port, "tom")
        try:
            alice.expect("join", nick="tom")
            proc.proc.send_signal(sig)
            assert alice.expect("bye")["reason"]
            alice.read_until_eof()
            lines = tom.read_until_eof()
            assert any(line.startswith("*** ") and "shutting down" in line for line in lines)
        finally:
            alice.close()
            tom.close()
        proc.proc.wait(10)
        assert proc.proc.returncode == 0
        assert proc.proc.stderr is not None
        assert "Traceback" not in proc.proc.stderr.read()
    finally:
        proc.stop()


def test_serve_port_in_use(chatkit_home):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(chatkit_home, "serve", "--host", "127.0.0.1", "--port", str(port),
                     "--no-discovery")
    assert result.returncode != 0
    line = one_line_error(result)
    assert str(port) in line and "in use" in line


# --------------------------------------------------------------------------- chatkit send


def test_send_message_reaches_room(serve_process, chatkit_home):
    listener = JsonClient(serve_process.port, "listener")
    try:
        result = run(chatkit_home, "send", "--host", "127.0.0.1", "--port",
                     str(serve_process.port), "--nick", "bot", "hello", "from", "send")
        assert result.returncode == 0, result.stderr
        assert listener.expect("message", nick="bot")["text"] == "hello from send"
    finally:
        listener.close()


def test_send_stdin_lines(serve_process, chatkit_home):
    listener = JsonClient(serve_process.port, "listener", room="ops")
    try:
        result = run(chatkit_home, "send", "--host", "127.0.0.1", "--port",
                     str(serve_process.port), "--nick", "bot", "--room", "ops",
                     stdin="one\n\ntwo\r\nthree\n")
        assert result.returncode == 0, result.stderr
        texts = [listener.expect("message", nick="bot")["text"] for _ in range(3)]
        assert texts == ["one", "two", "three"]
    finally:
        listener.close()


def test_send_reads_lines_as_piped_join_does(serve_process, chatkit_home):
    """`/me` is an action and `//` a literal slash, in `chatkit send` as in piped join."""
    listener = JsonClient(serve_process.port, "listener")
    try:
        result = run(chatkit_home, "send", "--host", f"127.0.0.1:{serve_process.port}",
                     "--nick", "bot", stdin="/me deploys\n//me literally\n")
        assert result.returncode == 0, result.stderr
        action = listener.expect("message", nick="bot")
        assert action["text"] == "deploys" and action["action"] is True
        literal = listener.expect("message", nick="bot")
        assert literal["text"] == "/me literally" and not literal.get("action")
    finally:
        listener.close()


def test_send_refuses_a_command_it_cannot_carry_out(serve_process, chatkit_home):
    result = run(chatkit_home, "send", "--host", f"127.0.0.1:{serve_process.port}",
                 "--nick", "bot", "/join", "dev")
    assert result.returncode == 2
    line = one_line_error(result)
    assert "/join is not something `chatkit send` does" in line and "//" in line


def test_send_nick_from_environment(serve_process, chatkit_home):
    listener = JsonClient(serve_process.port, "listener")
    try:
        result = run(chatkit_home, "send", "--host", "127.0.0.1", "--port",
                     str(serve_process.port), "hi", CHATKIT_NICK="envbot")
        assert result.returncode == 0, result.stderr
        assert listener.expect("message")["nick"] == "envbot"
    finally:
        listener.close()


def test_send_unreachable_exit_3(chatkit_home):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        result = run(chatkit_home, "send", "--host", "127.0.0.1", "--port", str(port),
                     "--nick", "bot", "hi")
    assert result.returncode == 3
    assert str(port) in one_line_error(result)


def test_send_taken_nick_exit_4(serve_process, chatkit_home):
    holder = JsonClient(serve_process.port, "bot")
    try:
        result = run(chatkit_home, "send", "--host", "127.0.0.1", "--port",
                     str(serve_process.port), "--nick", "BOT", "hi")
        assert result.returncode == 4
        assert "taken" in one_line_error(result)
    finally:
        holder.close()


def test_send_unknown_room_exit_4(serve_process, chatkit_home):
    result = run(chatkit_home, "send", "--host", "127.0.0.1", "--port", str(serve_process.port),
                 "--nick", "bot", "--room", "nowhere", "hi")
    assert result.returncode == 4
    assert "nowhere" in one_line_error(result)


def test_send_leaves_no_session(serve_process, chatkit_home):
    watcher = JsonClient(serve_process.port, "watcher")
    try:
        result = run(chatkit_home, "send", "--host", "127.0.0.1", "--port",
                     str(serve_process.port), "--nick", "bot", "x")
        assert result.returncode == 0, result.stderr
        watcher.expect("message", nick="bot")  # a quiet sender: no join or quit to wait for
        wait_for(lambda: [u["nick"] for u in watcher.request({"type": "who"})["users"]]
                 == ["watcher"], message="the sender's session gone")
        # its nickname is free again
        again = run(chatkit_home, "send", "--host", "127.0.0.1", "--port",
                    str(serve_process.port), "--nick", "bot", "y")
        assert again.returncode == 0, again.stderr
    finally:
        watcher.close()


def test_a_server_sending_absurdly_nested_frames_is_a_protocol_error(chatkit_home):
    # A hostile "server" on loopback answers the hello with a welcome nested 600 levels deep:
    # json.loads takes it, copying it while sanitising did not (RecursionError, exit 1).
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_once() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            conn.recv(65536)  # the hello
            conn.sendall(b'{"type": "welcome", "nick": "a", "x": ' + b"[" * 600 + b"]" * 600
                         + b"}\n")
            conn.recv(65536)  # until the client hangs up

    thread = threading.Thread(target=serve_once, daemon=True)
    thread.start()
    try:
        result = run(chatkit_home, "send", "--host", f"127.0.0.1:{port}", "--nick", "a",
                     "--room", "lobby", "--no-tls", "hi")
    finally:
        thread.join(10)
        listener.close()
    assert result.returncode == 5, result.stderr
    assert "nested too deeply" in one_line_error(result)


def test_sigterm_right_after_the_banner_still_stops_gracefully(tmp_path):
    # A service manager may stop the server the moment it has started. The graceful stop
    # (notice to clients, everything stored, discovery's "stopped" announcement) must run even
    # then: before the fix, a SIGTERM between the banner's first line and the installation of
    # the signal handlers killed the process outright (status -15).
    for attempt in range(5):
        serve = ServeProcess.start(["--no-discovery", "--no-history"],
                                   env_home=str(tmp_path / f"home{attempt}"))
        status = serve.stop(signal.SIGTERM)  # at once: the banner's first line was just read
        assert status == 0, f"attempt {attempt}: exit status {status}"
