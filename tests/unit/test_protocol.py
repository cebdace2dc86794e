"""Unit tests of chatkit.protocol: framing, byte filters, sanitising, names, commands, rendering."""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatkit.protocol import (
    COMMAND_NAMES,
    MAX_FRAME,
    MAX_NICK,
    MAX_REF,
    MAX_ROOM,
    MAX_TEXT,
    FrameError,
    LineSplitter,
    TelnetFilter,
    clean_text,
    command_list,
    decode,
    encode,
    field,
    name_key,
    normalize_nick,
    normalize_room,
    parse_command,
    render_text,
    sanitize_text,
)

# --------------------------------------------------------------------------- encode / decode


@pytest.mark.parametrize("frame", [
    {"type": "msg", "room": "lobby", "text": "hello"},
    {"type": "msg", "room": "lobby", "text": "héllo 世界 🎉", "ref": "r1"},
    {"type": "hello", "version": 1, "nick": "alice", "room": None, "ref": 7},
    {"type": "x", "nested": {"a": [1, 2.5, True, None]}},
])
def test_encode_decode_round_trip(frame):
    data = encode(frame)
    assert isinstance(data, bytes)
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    assert decode(data) == frame
    assert decode(data.decode()) == frame


def test_encode_keeps_non_ascii_readable():
    assert "世界".encode() in encode({"type": "msg", "text": "世界"})


def test_encode_escapes_newlines_in_text():
    data = encode({"type": "msg", "text": "a\nb\rc"})
    assert data.count(b"\n") == 1 and b"\r" not in data
    assert decode(data)["text"] == "a\nb\rc"


@pytest.mark.parametrize("line, code", [
    (b"\xff\xfe{}", "bad_utf8"),
    (b'{"type": "msg", "text": "\xc3"}', "bad_utf8"),
    (b"not json", "bad_frame"),
    (b"{", "bad_frame"),
    (b"", "bad_frame"),
    (b"[1, 2]", "bad_frame"),
    (b'"type"', "bad_frame"),
    (b"42", "bad_frame"),
    (b"null", "bad_frame"),
    (b"{}", "bad_frame"),
    (b'{"type": 5}', "bad_frame"),
    (b'{"type": null}', "bad_frame"),
    (b'{"type": ["msg"]}', "bad_frame"),
    (b'{"type": "msg", "ref": 1.5}', "bad_frame"),
    (b'{"type": "msg", "ref": true}', "bad_frame"),
    (b'{"type": "msg", "ref": [1]}', "bad_frame"),
    (('{"type": "msg", "ref": "' + "r" * (MAX_REF + 1) + '"}').encode(), "bad_frame"),
    (b"[" * 100_000, "bad_frame"),  # deep nesting: RecursionError inside json
    (b'{"type": "x", "n": ' + b"9" * 5000 + b"}", "bad_frame"),  # int digit limit
])
def test_decode_errors(line, code):
    with pytest.raises(FrameError) as info:
        decode(line)
    assert info.value.code == code
    assert info.value.message and "\n" not in info.value.message


def test_decode_accepts_valid_refs_and_ignores_unknown_fields():
    assert decode(b'{"type": "ping", "ref": "' + b"r" * MAX_REF + b'"}')["ref"] == "r" * MAX_REF
    assert decode(b'{"type": "ping", "ref": 12345678901234567890}')["ref"] == \
        12345678901234567890
    assert decode(b'{"type": "ping", "future": {"x": 1}}')["future"] == {"x": 1}


def test_field_types():
    frame = {"type": "join", "room": "lobby", "create": False, "version": True, "n": 3}
    assert field(frame, "room", str) == "lobby"
    assert field(frame, "create", bool) is False
    assert field(frame, "n", int) == 3
    assert field(frame, "missing", str, required=False, default="d") == "d"
    with pytest.raises(FrameError) as info:
        field(frame, "missing", str)
    assert info.value.code == "bad_frame" and "missing" in info.value.message
    with pytest.raises(FrameError):
        field(frame, "room", int)
    with pytest.raises(FrameError):
        field(frame, "version", int)  # a bool is not an int


# --------------------------------------------------------------------------- LineSplitter


def feed_all(splitter: LineSplitter, *chunks: bytes) -> list:
    out: list = []
    for chunk in chunks:
        out.extend(splitter.feed(chunk))
    return out


def lines_only(items: list) -> list[bytes]:
    return [item for item in items if not isinstance(item, FrameError) and item]


def test_splitter_lf_crlf_cr():
    items = feed_all(LineSplitter(), b"one\ntwo\r\nthree\rfour\n")
    assert not any(isinstance(item, FrameError) for item in items)
    assert lines_only(items) == [b"one", b"two", b"three", b"four"]


def test_splitter_keeps_partial_line_until_its_end():
    splitter = LineSplitter()
    assert list(splitter.feed(b"hel")) == []
    assert list(splitter.feed(b"lo")) == []
    assert list(splitter.feed(b" world\nnext")) == [b"hello world"]
    assert list(splitter.feed(b"\n")) == [b"next"]


def test_splitter_crlf_split_across_chunks():
    items = feed_all(LineSplitter(), b"a\r", b"\nb\r", b"\n")
    assert lines_only(items) == [b"a", b"b"]
    assert all(item in (b"a", b"b", b"") for item in items)


def test_splitter_byte_by_byte():
    data = b"alpha\r\nbeta\ngamma\r"
    items = feed_all(LineSplitter(), *(data[i:i + 1] for i in range(len(data))))
    assert lines_only(items) == [b"alpha", b"beta", b"gamma"]


def test_splitter_drops_nul():
    items = feed_all(LineSplitter(), b"he\0llo\n\0\0\n", b"\0wor", b"ld\0\n")
    assert lines_only(items) == [b"hello", b"world"]


def test_splitter_line_at_the_limit_passes():
    line = b"x" * (MAX_FRAME - 1)
    assert feed_all(LineSplitter(), line + b"\n") == [line]
    assert feed_all(LineSplitter(), line[:100], line[100:], b"\n") == [line]


@pytest.mark.parametrize("chunks", [
    [b"x" * MAX_FRAME + b"\nnext\n"],  # one chunk
    [b"x" * 5000, b"x" * 5000 + b"\nnext\n"],  # grows over the limit with its end in view
    [b"x" * MAX_FRAME, b"x" * 3 * MAX_FRAME, b"x" * 10, b"\r\nnext\r\n"],  # long discard
    [b"x" * 100_000, b"\n", b"next\n"],  # one huge chunk
])
def test_splitter_oversized_line_reported_once_then_recovers(chunks):
    items = feed_all(LineSplitter(), *chunks)
    errors = [item for item in items if isinstance(item, FrameError)]
    assert len(errors) == 1
    assert errors[0].code == "frame_too_long"
    assert lines_only(items) == [b"next"]
    # the error comes before the next good line
    assert isinstance(next(i for i in items if i), FrameError)


def test_splitter_two_oversized_lines_two_errors():
    items = feed_all(LineSplitter(), b"x" * (MAX_FRAME + 1) + b"\n", b"y" * (MAX_FRAME * 2),
                     b"\nok\n")
    assert [i.code for i in items if isinstance(i, FrameError)] == ["frame_too_long"] * 2
    assert lines_only(items) == [b"ok"]


def test_splitter_custom_limit():
    items = feed_all(LineSplitter(max_frame=10), b"123456789\n1234567890\nok\n")
    assert items[0] == b"123456789"
    assert isinstance(items[1], FrameError)
    assert items[2:] == [b"ok"]


# --------------------------------------------------------------------------- TelnetFilter


def test_telnet_plain_data_passes():
    assert TelnetFilter().feed(b"hello\r\n") == b"hello\r\n"
    assert TelnetFilter().feed("héllo".encode()) == "héllo".encode()


def test_telnet_interrupt_process_and_do_option():
    # What telnet sends on Ctrl-C: IAC IP, IAC DO TIMING-MARK.
    assert TelnetFilter().feed(b"ab\xff\xf4\xff\xfd\x06cd") == b"abcd"


@pytest.mark.parametrize("verb", [251, 252, 253, 254])
def test_telnet_will_wont_do_dont(verb):
    assert TelnetFilter().feed(bytes([65, 255, verb, 1, 66])) == b"AB"


def test_telnet_subnegotiation_removed():
    # IAC SB NAWS 0 80 0 24 IAC SE, with an escaped IAC IAC inside
    data = b"x\xff\xfa\x1f\x00\x50\xff\xff\x00\x18\xff\xf0y"
    assert TelnetFilter().feed(data) == b"xy"


def test_telnet_iac_iac_dropped():
    assert TelnetFilter().feed(b"a\xff\xffb") == b"ab"


def test_telnet_split_across_chunks():
    data = b"he\xff\xfd\x18llo\xff\xfa\x18\x01\xff\xf0 wor\xff\xf4ld\r\n"
    for cut in range(len(data) + 1):
        telnet = TelnetFilter()
        assert telnet.feed(data[:cut]) + telnet.feed(data[cut:]) == b"hello world\r\n", cut
    telnet = TelnetFilter()
    assert b"".join(telnet.feed(bytes([b])) for b in data) == b"hello world\r\n"


# --------------------------------------------------------------------------- sanitising


@pytest.mark.parametrize("raw, clean", [
    ("\x1b[31mred\x1b[0m", "red"),
    ("\x1b[1;38;5;196mbold\x1b[m!", "bold!"),
    ("\x1b]0;title\x07after", "after"),
    ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"),
    ("\x1bPq#0\x1b\\dcs", "dcs"),
    ("\x1b(Bcharset \x1b7saved", "charset saved"),
    ("\x9b2Jc1 csi", "c1 csi"),
    ("\x1b]unterminated title", ""),
    ("trailing\x1b[", "trailing"),
    ("bell\x07 and back\x08space", "bell and backspace"),
    ("a\x00b\x01c\x1fd", "abcd"),
    ("del\x7f", "del"),
    ("c1\x80\x85\x9b\x9f", "c1"),
    ("tab\there", "tab here"),
    ("line\nbreak\rcr", "linebreakcr"),
    ("evil\u202eoverride\u202c", "eviloverride"),
    ("\u2066iso\u2069 \u200eltr\u200f \u061c", "iso ltr "),
    ("zero\u200bwidth\u200c\u200d\u2060\ufeff", "zerowidth"),
    ("soft\u00adhyphen", "softhyphen"),
    ("surrogate\ud800", "surrogate"),
])
def test_sanitize_removes(raw, clean):
    assert sanitize_text(raw) == clean


@pytest.mark.parametrize("text", [
    "plain ASCII text!",
    "àéîõü ÀÉÎÕÜ ñ ç ß",
    "中文 日本語 한국어",
    "emoji 🎉👍🏽 👨‍👩‍👧",  # the ZWJ sequence keeps its pieces; ZWJ itself is removed
    "עברית العربية",
    "math ∑ ∞ ≠ ½",
])
def test_sanitize_keeps_ordinary_unicode(text):
    expected = text.replace("\u200d", "")
    assert sanitize_text(text) == expected


def test_clean_text_strips_and_bounds():
    assert clean_text("  hi\t ") == "hi"
    with pytest.raises(FrameError) as info:
        clean_text(" \x1b\u200b ")
    assert info.value.code == "empty_text"
    assert clean_text("", allow_empty=True) == ""
    assert clean_text("x" * MAX_TEXT) == "x" * MAX_TEXT
    with pytest.raises(FrameError) as info:
        clean_text("x" * (MAX_TEXT + 1))
    assert info.value.code == "text_too_long"


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("nick", ["alice", "Bob", "_under", "a", "x" * MAX_NICK, "al.ice-2_x",
                                  "Zoë", "名前", "Ωμέγα", "алиса", "ヤマダ太郎", "Ünal_2"])
def test_valid_nicks(nick):
    assert normalize_nick(nick) == nick


# Cyrillic а/о, Greek Ω, Armenian օ, Cherokee Ꭺ, Coptic ⲟ
@pytest.mark.parametrize("name", ["аlice", "Ωmega", "paypаl", "bоb.2", "bօb", "Ꭺlice", "pⲟst"])
def test_names_mixing_look_alike_alphabets_are_refused(name):
    with pytest.raises(FrameError) as caught:
        normalize_nick(name)
    assert caught.value.code == "bad_nick" and "look alike" in caught.value.message
    with pytest.raises(FrameError) as caught:
        normalize_room(name)
    assert caught.value.code == "bad_room"


@pytest.mark.parametrize("nick", ["", "   ", "1abc", "-dash", ".dot", "{json", "/cmd", "a b",
                                  "al!ce", "x" * (MAX_NICK + 1), "a\x1bb", "a\u200bb", "a\u202eb",
                                  "#room", "a\tb", "émoji🎉"])
def test_invalid_nicks(nick):
    with pytest.raises(FrameError) as info:
        normalize_nick(nick)
    assert info.value.code == "bad_nick"


def test_nick_nfkc_and_strip():
    assert normalize_nick("  alice ") == "alice"
    assert normalize_nick("ａｌｉｃｅ") == "alice"  # fullwidth -> ASCII
    assert normalize_nick("ﬁsh") == "fish"  # ligature
    decomposed = unicodedata.normalize("NFD", "Zoë")
    assert decomposed != "Zoë"
    assert normalize_nick(decomposed) == "Zoë"
    # the length is counted after NFKC: 24 fullwidth letters are 24 letters
    assert normalize_nick("ａ" * MAX_NICK) == "a" * MAX_NICK


def test_name_key_casefold():
    assert name_key("Alice") == name_key("ALICE") == name_key("alice")
    assert name_key("Straße") == name_key("STRASSE")
    assert name_key(normalize_nick("ＡＬＩＣＥ")) == name_key("alice")


@pytest.mark.parametrize("room, expected", [
    ("lobby", "lobby"), ("#lobby", "lobby"), ("dev-ops.2_x", "dev-ops.2_x"), ("123", "123"),
    (" #Room ", "Room"), ("x" * MAX_ROOM, "x" * MAX_ROOM), ("ｒｏｏｍ", "room"), ("café", "café"),
])
def test_valid_rooms(room, expected):
    assert normalize_room(room) == expected


@pytest.mark.parametrize("room", ["", "#", "  ", "a b", "##double", "x" * (MAX_ROOM + 1),
                                  "bad!", "a\x1bb", "a\u202eb", "slash/room"])
def test_invalid_rooms(room):
    with pytest.raises(FrameError) as info:
        normalize_room(room)
    assert info.value.code == "bad_room"


# --------------------------------------------------------------------------- commands


def test_command_table():
    everything = command_list(frozenset({"op", "admin"}))
    names = [c["name"] for c in everything]
    assert set(names) == COMMAND_NAMES >= {"join", "part", "rooms", "msg", "nick", "who", "me",
                                           "topic", "help", "quit", "exit"}
    # operators' and admins' commands are listed only for them
    assert {"kick", "kill"}.isdisjoint(c["name"] for c in command_list())
    assert {c["role"] for c in everything if "role" in c} == {"op", "admin"}
    for command in everything:
        assert command["usage"].startswith("/" + command["name"])
        assert command["help"]


@pytest.mark.parametrize("line, expected", [
    ("/join dev", {"type": "join", "room": "dev"}),
    ("/JOIN #dev", {"type": "join", "room": "#dev"}),
    ("/join   dev  ", {"type": "join", "room": "dev"}),
    ("/part", {"type": "part", "room": "lobby", "reason": None}),
    ("/part dev", {"type": "part", "room": "dev", "reason": None}),
    ("/part dev see you later", {"type": "part", "room": "dev", "reason": "see you later"}),
    ("/rooms", {"type": "rooms"}),
    ("/msg bob hi there", {"type": "privmsg", "to": "bob", "text": "hi there"}),
    ("/nick robert", {"type": "nick", "nick": "robert"}),
    ("/who", {"type": "who", "room": None}),
    ("/who dev", {"type": "who", "room": "dev"}),
    ("/me waves", {"type": "me", "room": "lobby", "text": "waves"}),
    ("/topic", {"type": "topic", "room": "lobby", "text": None}),
    ("/topic release on Friday", {"type": "topic", "room": "lobby",
                                  "text": "release on Friday"}),
    ("/help", {"type": "help"}),
    ("/Help", {"type": "help"}),
    ("/quit", {"type": "quit", "reason": None}),
    ("/quit gone home", {"type": "quit", "reason": "gone home"}),
    ("/exit", {"type": "quit", "reason": None}),
])
def test_parse_command(line, expected):
    assert parse_command(line, "lobby") == expected


@pytest.mark.parametrize("line", ["/join", "/msg", "/msg bob", "/msg bob   ", "/nick", "/me"])
def test_parse_command_usage_errors(line):
    with pytest.raises(FrameError) as info:
        parse_command(line, "lobby")
    assert info.value.code == "bad_frame"
    name = line[1:].split()[0]
    assert info.value.message.startswith("usage: /" + name)


@pytest.mark.parametrize(("line", "code", "says"), [
    ("/join bad room!", "bad_room", "invalid room name 'bad room!': ' ' and '!' are not allowed"),
    ("/join a b", "bad_room", "' ' is not allowed"),
    ("/join dev?", "bad_room", "'?' is not allowed"),
    ("/nick a b", "bad_nick", "invalid nickname 'a b': ' ' is not allowed"),
    ("/nick 9lives", "bad_nick", "start with a letter or _"),
])
def test_parse_command_says_what_is_wrong_with_a_name(line, code, says):
    """Not `usage: /join ROOM`, which hides why the name was refused."""
    with pytest.raises(FrameError) as info:
        parse_command(line, "lobby")
    assert info.value.code == code and says in info.value.message
    assert "usage" not in info.value.message


def test_nick_rule_names_the_underscore_it_allows():
    assert normalize_nick("_bot") == "_bot"
    with pytest.raises(FrameError) as info:
        normalize_nick("-bot")
    assert "start with a letter or _," in info.value.message


@pytest.mark.parametrize("line", ["/frobnicate", "/", "/ join", "/j0in x"])
def test_parse_command_unknown(line):
    with pytest.raises(FrameError) as info:
        parse_command(line, "lobby")
    assert info.value.code == "unknown_command"


@pytest.mark.parametrize("line", ["/part", "/me waves", "/topic", "/topic new"])
def test_parse_command_needs_a_room(line):
    with pytest.raises(FrameError) as info:
        parse_command(line, None)
    assert info.value.code == "not_in_room"


def test_parse_command_without_room_still_works_for_global_commands():
    assert parse_command("/who", None) == {"type": "who", "room": None}
    assert parse_command("/join dev", None) == {"type": "join", "room": "dev"}
    assert parse_command("/part dev", None)["room"] == "dev"


# --------------------------------------------------------------------------- render_text


@pytest.mark.parametrize("frame, me, lines", [
    ({"type": "message", "room": "lobby", "nick": "alice", "text": "hello", "action": False},
     None, ["[lobby] <alice> hello"]),
    ({"type": "message", "room": "lobby", "nick": "alice", "text": "waves", "action": True},
     None, ["[lobby] * alice waves"]),
    ({"type": "private", "from": "alice", "to": "bob", "text": "psst"}, "bob",
     ["[pm] <alice> psst"]),
    ({"type": "private", "from": "alice", "to": "bob", "text": "psst"}, "ALICE",
     ["[pm -> bob] psst"]),
    ({"type": "join", "room": "lobby", "nick": "bob"}, None, ["*** bob joined lobby"]),
    ({"type": "part", "room": "lobby", "nick": "bob", "reason": "bye"}, None,
     ["*** bob left lobby (bye)"]),
    ({"type": "part", "room": "lobby", "nick": "bob", "reason": None}, None,
     ["*** bob left lobby"]),
    ({"type": "part", "room": "lobby", "nick": "bob", "reason": None}, "alice",
     ["*** bob left lobby"]),
    ({"type": "part", "room": "lobby", "nick": "Bob", "reason": None}, "bob",
     ["*** you left lobby"]),
    ({"type": "part", "room": "lobby", "nick": "bob", "reason": "lunch"}, "bob",
     ["*** you left lobby (lunch)"]),
    ({"type": "quit", "nick": "bob", "reason": "gone home"}, None, ["*** bob quit (gone home)"]),
    ({"type": "quit", "nick": "bob", "reason": None}, None, ["*** bob quit"]),
    ({"type": "nick", "old": "bob", "new": "robert"}, "alice",
     ["*** bob is now known as robert"]),
    ({"type": "nick", "old": "bob", "new": "robert"}, "robert",
     ["*** you are now known as robert"]),
    ({"type": "topic", "room": "lobby", "text": "release on Friday", "nick": "alice"}, None,
     ["*** alice set the topic of lobby: release on Friday"]),
    ({"type": "topic", "room": "lobby", "text": None, "nick": "alice"}, None,
     ["*** alice cleared the topic of lobby"]),
    ({"type": "topic", "room": "lobby", "text": "t", "nick": None}, None,
     ["*** topic of lobby: t"]),
    ({"type": "topic", "room": "lobby", "text": None, "nick": None}, None,
     ["*** lobby has no topic"]),
    ({"type": "joined", "room": "dev", "topic": None, "members": ["alice", "bob"]}, None,
     ["*** you joined dev (2 here: alice, bob)"]),
    ({"type": "joined", "room": "dev", "topic": "T", "members": ["alice"]}, None,
     ["*** you joined dev (1 here: alice)", "*** topic: T"]),
    ({"type": "who", "room": "dev", "users": [{"nick": "a", "rooms": ["dev"]},
                                              {"nick": "b", "rooms": ["dev", "x"]}]}, None,
     ["*** 2 in dev: a, b"]),
    ({"type": "who", "room": None, "users": [{"nick": "a", "rooms": ["dev", "lobby"]},
                                             {"nick": "b", "rooms": []}]}, None,
     ["*** 2 connected: a (dev, lobby), b (no room)"]),
    ({"type": "rooms", "rooms": [{"name": "dev", "members": 2, "topic": "T"},
                                 {"name": "lobby", "members": 1, "topic": None}]}, None,
     ["*** 2 rooms:", "***   dev (2) - T", "***   lobby (1)"]),
    ({"type": "rooms", "rooms": [{"name": "lobby", "members": 0, "topic": None}]}, None,
     ["*** 1 room:", "***   lobby (0)"]),
    ({"type": "notice", "text": "server shutting down"}, None,
     ["*** server shutting down"]),
    ({"type": "error", "code": "no_such_nick", "message": "no such nick: carol"}, None,
     ["!!! no such nick: carol"]),
    ({"type": "bye", "reason": "goodbye"}, None, ["*** bye: goodbye"]),
    ({"type": "bye", "reason": None}, None, ["*** bye: disconnected"]),
    ({"type": "welcome", "server": "office", "nick": "alice"}, None,
     ["*** welcome to office, alice! Type to talk, /help for commands."]),
    ({"type": "pong"}, None, []),
    ({"type": "something-new"}, None, []),
])
def test_render_text(frame, me, lines):
    assert render_text(frame, me) == lines


def test_render_help_lists_every_command():
    everything = command_list(frozenset({"op", "admin"}))
    lines = render_text({"type": "help", "commands": everything})
    assert lines[0] == "*** commands:"
    assert len(lines) == 1 + len(COMMAND_NAMES)
    for command, line in zip(everything, lines[1:], strict=True):
        assert command["usage"] in line and command["help"] in line


# --------------------------------------------------------------------------- properties


# The frame parser on arbitrary bytes: tests/test_fuzz.py.


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5), st.text(max_size=20))
def test_decode_arbitrary_json_objects(obj, kind):
    if "type" not in obj:
        obj["type"] = kind
    line = json.dumps(obj).encode()
    for split in LineSplitter(max_frame=1 << 20).feed(line + b"\n"):
        try:
            decode(split)
        except FrameError as exc:
            assert exc.code == "bad_frame"


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_sanitize_never_leaves_control_characters(text):
    out = sanitize_text(text)
    for char in out:
        assert unicodedata.category(char) not in ("Cc", "Cs"), repr(char)
        assert char not in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200b\ufeff"
    assert sanitize_text(out) == out  # idempotent


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_names_validate_or_raise_frame_error(text):
    for normalize, code in ((normalize_nick, "bad_nick"), (normalize_room, "bad_room")):
        try:
            name = normalize(text)
        except FrameError as exc:
            assert exc.code == code
        else:
            assert name and sanitize_text(name) == name
            assert normalize(name) == name


@pytest.mark.parametrize("line", [
    r'{"type": "msg", "text": "\ud800"}',
    r'{"type": "hello", "password": "a\udfffb"}',
    r'{"type": "x", "deep": [[{"\udc00": 1}]]}',
])
def test_an_unpaired_surrogate_escape_is_a_frame_error(line):
    with pytest.raises(FrameError) as caught:
        decode(line)
    assert caught.value.code == "bad_frame"


def test_a_surrogate_pair_escape_is_one_character():
    assert decode(r'{"type": "msg", "text": "\ud83d\ude00"}')["text"] == "\U0001f600"
