"""The one classifier of input lines, shared by the interactive and the piped client."""

from __future__ import annotations

import pytest

from chatkit.client.lines import CLIENT_COMMAND_NAMES, InputLine, classify


@pytest.mark.parametrize("line, expected", [
    ("", InputLine("blank")),
    ("   \r\n", InputLine("blank")),
    ("hello\n", InputLine("message", "hello")),
    ("hello\r\n", InputLine("message", "hello")),
    ("  indented /not a command", InputLine("message", "  indented /not a command")),
    ("//slash", InputLine("message", "/slash")),
    ("//", InputLine("message", "/")),
    ("/me waves\n", InputLine("command", "/me waves", "me", "waves")),
    ("/JOIN Dev", InputLine("command", "/JOIN Dev", "join", "Dev")),
    ("/frobnicate now", InputLine("command", "/frobnicate now", "frobnicate", "now")),
    ("/", InputLine("command", "/", "", "")),
    ("/help", InputLine("client", "/help", "help", "")),
    ("/Quit  gone fishing  ", InputLine("client", "/Quit  gone fishing  ", "quit",
                                        "gone fishing")),
    ("/exit\n", InputLine("client", "/exit", "exit", "")),
    ("/ignore bob", InputLine("client", "/ignore bob", "ignore", "bob")),
])
def test_classify(line: str, expected: InputLine) -> None:
    assert classify(line) == expected


def test_every_client_command_is_classified_as_one() -> None:
    assert CLIENT_COMMAND_NAMES == {"help", "clear", "bell", "ignore", "unignore", "reconnect",
                                    "quit", "exit", "remember", "forget"}
    for name in CLIENT_COMMAND_NAMES:
        assert classify(f"/{name.upper()} x").kind == "client"


def test_history_marker_starts_the_answer_of_history_lines_only():
    from chatkit.client.lines import history_marker

    assert history_marker(classify("/history"), "lobby") == \
        "*** history of lobby (up to 50 messages):"
    assert history_marker(classify("/HISTORY 5"), "dev") == "*** history of dev (up to 5 messages):"
    assert history_marker(classify("/history x"), "lobby") is None  # the usage explains it
    assert history_marker(classify("/history"), None) is None  # no room: the error explains it
    assert history_marker(classify("/who"), "lobby") is None
    assert history_marker(classify("history"), "lobby") is None


def test_send_frame_reads_a_line_as_piped_join_does():
    from chatkit.client.lines import send_frame
    from chatkit.errors import ConfigError

    assert send_frame("hi\n", "ops") == {"type": "msg", "room": "ops", "text": "hi"}
    assert send_frame("/me deploys", "ops") == {"type": "me", "room": "ops", "text": "deploys"}
    assert send_frame("//me deploys", "ops") == {"type": "msg", "room": "ops",
                                                 "text": "/me deploys"}
    assert send_frame("  \n", "ops") is None
    for line in ("/join dev", "/frobnicate", "/quit", "/me"):
        with pytest.raises(ConfigError):
            send_frame(line, "ops")
