"""`chatkit join` without a terminal, through a real subprocess of the real CLI."""

from __future__ import annotations

import json
import subprocess
import threading
import time

from helpers import JsonClient, ServeProcess, chatkit_cmd, cli_env, wait_for


def join(port: int, home: str, stdin: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        chatkit_cmd("join", f"127.0.0.1:{port}", *args), input=stdin, capture_output=True,
        text=True, env=cli_env(home), timeout=20)


def test_lines_are_sent_and_events_printed(server, chatkit_home):
    watcher = JsonClient(server.port, "watcher")
    try:
        result = join(server.port, chatkit_home, "hello\n/me waves\n\n//slash\n",
                      "--nick", "bot")
        assert result.returncode == 0, result.stderr
        out = result.stdout.splitlines()
        assert "[lobby] <bot> hello" in out  # accepted: the server's echo
        assert "[lobby] * bot waves" in out
        assert "[lobby] <bot> /slash" in out
        texts = [watcher.expect("message", nick="bot")["text"] for _ in range(3)]
        assert texts == ["hello", "waves", "/slash"]
        assert "\x1b" not in result.stdout  # plain lines, no prompt UI
    finally:
        watcher.close()


def test_json_output(server, chatkit_home):
    result = join(server.port, chatkit_home, "hi\n", "--nick", "bot", "--json")
    assert result.returncode == 0, result.stderr
    frames = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [frame["type"] for frame in frames]
    assert kinds[0] == "welcome" and "joined" in kinds
    echo = next(frame for frame in frames if frame["type"] == "message")
    assert echo["text"] == "hi" and echo["nick"] == "bot" and "ref" in echo


def test_nick_from_environment_and_room_option(server, chatkit_home):
    result = subprocess.run(
        chatkit_cmd("join", f"127.0.0.1:{server.port}", "--room", "dev"), input="x\n",
        capture_output=True, text=True, env=cli_env(chatkit_home, CHATKIT_NICK="envbot"),
        timeout=20)
    assert result.returncode == 0, result.stderr
    assert "[dev] <envbot> x" in result.stdout.splitlines()


def test_client_commands_without_a_terminal(server, chatkit_home):
    result = join(server.port, chatkit_home, "/clear\n/help\nhi\n", "--nick", "bot")
    assert result.returncode == 0, result.stderr
    assert "/clear only works in the interactive client; ignored" in result.stderr
    assert "*** commands:" in result.stdout.splitlines()  # the server's own /help
    assert "[lobby] <bot> hi" in result.stdout.splitlines()


def test_history_answer_has_a_start_marker(server_factory, chatkit_home, tmp_path):
    server = server_factory(db=str(tmp_path / "chat.db"))
    poster = JsonClient(server.port, "poster")
    try:
        for text in ("one", "two"):  # answered by its echo: stored by then
            poster.request({"type": "msg", "room": "lobby", "text": text})
        result = join(server.port, chatkit_home, "/history 5\n", "--nick", "bot")
    finally:
        poster.close()
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    start = out.index("*** history of lobby (up to 5 messages):")
    # (joining replayed the same two lines, with their own end marker, before)
    end = out.index("*** end of history of lobby (2 messages)", start)
    replayed = [line for line in out[start + 1:end] if "<poster>" in line]
    assert [line.rsplit(" ", 1)[-1] for line in replayed] == ["one", "two"]


def test_quit_line_stops_reading(server, chatkit_home):
    result = join(server.port, chatkit_home, "one\n/quit done\nnever sent\n", "--nick", "bot")
    assert result.returncode == 0
    assert "never sent" not in result.stdout


def test_refused_line_gives_refused_status(server, chatkit_home):
    result = join(server.port, chatkit_home, "/msg nobody hi\n", "--nick", "bot")
    assert result.returncode == 4
    assert "!!!" in result.stdout
    assert "Traceback" not in result.stderr


def test_missing_nick_without_terminal_is_a_usage_error(server, chatkit_home):
    result = join(server.port, chatkit_home, "hi\n")
    assert result.returncode == 2
    assert "--nick" in result.stderr and "Traceback" not in result.stderr


def test_taken_nick_is_refused_in_one_line(server, chatkit_home):
    holder = JsonClient(server.port, "bot")
    try:
        result = join(server.port, chatkit_home, "hi\n", "--nick", "bot")
    finally:
        holder.close()
    assert result.returncode == 4
    assert len(error_lines(result.stderr)) == 1 and "Traceback" not in result.stderr


def test_unreachable_server_is_one_line(server, chatkit_home):
    port = server.port
    server.stop()
    result = join(port, chatkit_home, "hi\n", "--nick", "bot")
    assert result.returncode == 3
    assert len(error_lines(result.stderr)) == 1 and "Traceback" not in result.stderr


def test_giving_up_exits_at_once_with_status_3(tmp_path, chatkit_home):
    """A bot whose server is gone for good must not linger on a quiet stdin (`tail -f`)."""
    first = ServeProcess.start(["--no-discovery"], env_home=str(tmp_path / "serve-a"))
    port = first.port
    bot = subprocess.Popen(chatkit_cmd("join", f"127.0.0.1:{port}", "--nick", "bot"),
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=cli_env(chatkit_home))
    out: list[str] = []
    err: list[str] = []
    readers = [threading.Thread(target=lambda s=stream, into=lines: into.extend(s))
               for stream, lines in ((bot.stdout, out), (bot.stderr, err))]
    for reader in readers:
        reader.start()
    second = None
    try:
        bot.stdin.write("hello\n")
        bot.stdin.flush()
        wait_for(lambda: "[lobby] <bot> hello\n" in out, timeout=15, message="the echo")
        first.stop()
        # Another server on the same address, with another certificate: the client must not
        # trust it, and gives up reconnecting.
        second = ServeProcess.start(["--no-discovery"], env_home=str(tmp_path / "serve-b"),
                                    port=port)
        wait_for(lambda: any("gave up reconnecting" in line for line in err), timeout=30,
                 message="the client giving up")
        gave_up = time.monotonic()
        assert bot.wait(10) == 3  # stdin is still open: no further line needed to leave
        assert time.monotonic() - gave_up < 5
    finally:
        if bot.poll() is None:
            bot.kill()
            bot.wait(5)
        for reader in readers:
            reader.join(5)
        for stream in (bot.stdin, bot.stdout, bot.stderr):
            stream.close()
        first.stop()
        if second is not None:
            second.stop()
    text = "".join(err)
    assert "Traceback" not in text
    assert "SERVER IDENTITY CHANGED" in text  # why it gave up
    assert err[-1].startswith(f"Error: gave up reconnecting to 127.0.0.1:{port}"), err


def error_lines(stderr: str) -> list[str]:
    """stderr without the note about a certificate pinned on first use."""
    return [line for line in stderr.strip().splitlines() if "pinned its certificate" not in line]
