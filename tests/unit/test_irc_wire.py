"""chatkit/protocol/irc.py: parsing and writing IRC lines, tags, CTCP, splitting."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatkit.protocol import irc


def test_parse_command_params_and_trailing() -> None:
    message = irc.parse(b"privmsg #lobby :hello there :)")
    assert message.command == "PRIVMSG"
    assert message.params == ["#lobby", "hello there :)"]
    assert message.source == "" and message.tags == {}


def test_parse_source_and_middle_params() -> None:
    message = irc.parse(":alice!a@host MODE #lobby +o bob")
    assert message.source == "alice!a@host"
    assert message.params == ["#lobby", "+o", "bob"]


def test_parse_tags_unescaped() -> None:
    message = irc.parse(r"@label=a\sb\:c;+draft/reply=12;flag PRIVMSG #x :y")
    assert message.tags == {"label": "a b;c", "+draft/reply": "12", "flag": None}
    assert message.params == ["#x", "y"]


def test_parse_empty_trailing_and_bare_trailing() -> None:
    assert irc.parse("TOPIC #lobby :").params == ["#lobby", ""]
    assert irc.parse("QUIT :gone home").params == ["gone home"]
    assert irc.parse("PING").params == []


def test_parse_refuses_what_is_not_a_message() -> None:
    with pytest.raises(irc.IrcError) as exc:
        irc.parse(b"PRIVMSG #x :\xff\xfe")
    assert exc.value.code == "bad_utf8"
    with pytest.raises(irc.IrcError) as exc:
        irc.parse("@a=b ")
    assert exc.value.code == "empty"
    with pytest.raises(irc.IrcError) as exc:
        irc.parse("PRIVMSG #x :" + "a" * 600)
    assert exc.value.code == "too_long"


def test_more_than_fifteen_params_are_folded_into_the_last() -> None:
    message = irc.parse("CMD " + " ".join(str(n) for n in range(20)))
    assert len(message.params) == irc.MAX_PARAMS
    assert message.params[-1] == "14 15 16 17 18 19"


def test_line_quotes_the_last_param_when_it_must() -> None:
    assert irc.line("PRIVMSG", "#x", "hi") == "PRIVMSG #x hi"
    assert irc.line("PRIVMSG", "#x", "hi there") == "PRIVMSG #x :hi there"
    assert irc.line("PRIVMSG", "#x", ":)") == "PRIVMSG #x ::)"
    assert irc.line("TOPIC", "#x", "") == "TOPIC #x :"
    assert irc.line("PRIVMSG", "#x", "hi", trailing=True) == "PRIVMSG #x :hi"
    assert irc.line("JOIN", "#x", source="a!a@h") == ":a!a@h JOIN #x"


def test_line_never_lets_a_value_end_the_line() -> None:
    assert irc.line("PRIVMSG", "#x", "a\r\nQUIT :x\0") == "PRIVMSG #x :a  QUIT :x "


def test_tags_are_escaped_and_round_trip() -> None:
    value = "semi; space \\ back\r\nline"
    written = irc.line("PRIVMSG", "#x", "t", tags={"k": value, "flag": None})
    assert written.startswith("@k=semi\\:\\sspace\\s\\\\\\sback\\r\\nline;flag ")
    assert irc.parse(written).tags == {"k": value, "flag": None}


def test_unescape_drops_a_lone_backslash_and_keeps_unknown_escapes() -> None:
    assert irc.unescape_tag_value("a\\") == "a"
    assert irc.unescape_tag_value("\\b") == "b"


def test_ctcp_action_both_ways() -> None:
    assert irc.action("waves") == "\x01ACTION waves\x01"
    assert irc.ctcp("\x01ACTION waves\x01") == ("ACTION", "waves")
    assert irc.ctcp("\x01VERSION\x01") == ("VERSION", "")
    assert irc.ctcp("\x01ACTION unterminated") == ("ACTION", "unterminated")
    assert irc.ctcp("plain") is None


def test_formatting_codes_are_removed() -> None:
    assert irc.strip_formatting("\x02bold\x02 \x0304,12red\x03 \x1ditalic\x0f") == \
        "bold red italic"
    assert irc.strip_formatting("\x04ff00aacolour") == "colour"


def test_split_text_never_cuts_a_character() -> None:
    text = "é" * 300  # 600 bytes
    pieces = irc.split_text(text, 101)
    assert "".join(pieces) == text
    assert all(len(p.encode()) <= 101 for p in pieces)


def test_split_text_prefers_spaces() -> None:
    pieces = irc.split_text(("word " * 40).strip(), 50)
    assert all(p.endswith("word") for p in pieces)
    assert " ".join(pieces).split() == ["word"] * 40


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=600), st.integers(min_value=4, max_value=400))
def test_split_text_keeps_everything_within_the_budget(text: str, budget: int) -> None:
    pieces = irc.split_text(text, budget)
    assert all(len(p.encode()) <= budget for p in pieces)
    assert "".join(pieces).replace(" ", "") == text.replace(" ", "")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=700))
def test_parse_only_raises_irc_error(data: bytes) -> None:
    line = data.replace(b"\r", b"").replace(b"\n", b"").replace(b"\0", b"")
    try:
        message = irc.parse(line)
    except irc.IrcError as exc:
        assert exc.code in ("bad_utf8", "empty", "too_long")
    else:
        assert message.command and len(message.params) <= irc.MAX_PARAMS


def test_fit_bytes_and_server_time_and_names() -> None:
    assert irc.fit_bytes("ééé", 5) == "é…"
    assert irc.fit_bytes("short", 10) == "short"
    assert irc.server_time(1_700_000_000.5) == "2023-11-14T22:13:20.500Z"
    assert irc.server_name("my box!") == "my-box"
    assert irc.server_name("!!!") == "chatkit"
    assert irc.channel("lobby") == "#lobby" and irc.is_channel("#lobby")
