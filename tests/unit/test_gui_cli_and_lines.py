"""`chatkit gui`'s command line (without starting Qt), and the desktop client's pure parts:
what a line shows, where an event goes, what is remembered."""

from __future__ import annotations

import json

from click.testing import CliRunner

import chatkit.gui
from chatkit.cli import cli
from chatkit.gui.lines import Destination, destinations, line_for
from chatkit.gui.options import GuiOptions
from chatkit.gui.settings import GuiSettings


def test_without_pyside6_one_line_says_what_to_install(monkeypatch):
    monkeypatch.setattr(chatkit.gui, "qt_missing", lambda: True)
    result = CliRunner().invoke(cli, ["gui", "127.0.0.1", "--nick", "bob"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "chatkit: chatkit gui needs Qt for Python, which is not installed: "
        "pip install 'chatkit[gui]'"]


def test_the_command_line_becomes_options(monkeypatch):
    seen: list[GuiOptions] = []
    monkeypatch.setattr(chatkit.gui, "run_gui", lambda options: seen.append(options) or 0)
    monkeypatch.setattr(chatkit.gui, "qt_missing", lambda: False)
    result = CliRunner().invoke(cli, ["gui", "127.0.0.1:4000", "--nick", "bob", "--room", "dev",
                                      "--no-tls"], env={"CHATKIT_PASSWORD": "pw"})
    assert result.exit_code == 0, result.output
    assert seen == [GuiOptions(host="127.0.0.1", port=4000, nick="bob", room="dev", tls=False,
                               password="pw")]
    CliRunner().invoke(cli, ["gui", "--server", "office", "--broadcast", "127.255.255.255",
                             "--discovery-port", "4001", "--insecure"])
    assert seen[-1].host is None and seen[-1].server_name == "office"
    assert (seen[-1].broadcast, seen[-1].discovery_port) == (("127.255.255.255",), 4001)
    assert seen[-1].insecure


def test_help_lists_the_connection_options_of_join():
    text = CliRunner().invoke(cli, ["gui", "--help"]).output
    for option in ("--nick", "--room", "--no-tls", "--insecure", "--password",
                   "--password-file", "--server", "--broadcast", "--discovery-port"):
        assert option in text


def test_lines_are_drawn_by_the_terminal_renderer():
    live = line_for({"type": "message", "room": "lobby", "nick": "bob", "text": "hi alice",
                     "ts": 1.75e9}, "alice", "lobby")
    assert live is not None and live.mention and live.plain.endswith("<bob> hi alice")
    assert "[lobby]" not in live.plain  # the room in view is not repeated
    replay = line_for({"type": "message", "room": "lobby", "nick": "bob", "text": "old",
                       "ts": 1.75e9, "history": True}, "alice", "lobby")
    assert replay is not None and replay.history and not replay.mention
    assert replay.runs[0][1].count("-") == 1  # dated: "MM-DD HH:MM "
    action = line_for({"type": "message", "room": "lobby", "nick": "bob", "text": "waves",
                       "action": True, "ts": 1.75e9}, "alice", "lobby")
    assert action is not None and "* bob waves" in action.plain
    assert line_for({"type": "message", "room": "lobby", "nick": "bob", "text": "x"}, "alice",
                    "lobby", ignored=frozenset({"bob"})) is None


def test_events_go_to_their_conversation():
    rooms_of = {"bob": ["lobby", "dev"], "": ["lobby", "dev"]}
    assert destinations({"type": "message", "room": "dev"}, "alice", rooms_of) == \
        [Destination("dev")]
    assert destinations({"type": "private", "from": "bob", "to": "alice"}, "alice",
                        rooms_of) == [Destination("bob", private=True)]
    assert destinations({"type": "private", "from": "alice", "to": "bob"}, "alice",
                        rooms_of) == [Destination("bob", private=True)]
    assert destinations({"type": "quit", "nick": "Bob"}, "alice", rooms_of) == \
        [Destination("lobby"), Destination("dev")]
    assert destinations({"type": "nick", "old": "alice", "new": "al"}, "alice", rooms_of) == \
        [Destination("lobby"), Destination("dev")]
    assert destinations({"type": "who", "room": None, "users": []}, "alice", rooms_of) is None
    assert destinations({"type": "topic", "room": "dev", "text": "x", "nick": None}, "alice",
                        rooms_of) is None  # the answer to a query: where the user asked


def test_settings_are_remembered_and_a_damaged_file_gives_defaults(tmp_path):
    path = tmp_path / "gui.json"
    settings = GuiSettings.load(path)
    settings.nick, settings.font_size, settings.last_address = "alice", 14, "127.0.0.1:1"
    assert settings.toggle_mute("Dev") and settings.is_muted("dev")
    settings.save()
    again = GuiSettings.load(path)
    assert (again.nick, again.font_size, again.last_address, again.muted) == \
        ("alice", 14, "127.0.0.1:1", ["dev"])
    path.write_text(json.dumps({"nick": 3, "font_size": 999, "muted": "x"}))
    odd = GuiSettings.load(path)
    assert (odd.nick, odd.font_size, odd.muted) == ("", 40, [])
    path.write_text("{not json")
    assert GuiSettings.load(path).nick == ""
