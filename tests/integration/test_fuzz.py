"""Property-based fuzzing (hypothesis) of everything that parses untrusted input: the frame
parser, the text-mode command parser, the text sanitiser, the discovery datagram parser, and a
live server fed random bytes. Budgets are bounded so the whole file runs in seconds."""

from __future__ import annotations

import json
import random
import re
import socket
import time
import unicodedata

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatkit import discovery, protocol
from chatkit.protocol import FrameError, LineSplitter, TelnetFilter, decode, parse_command

from helpers import JsonClient, wait_for

BUDGET = settings(max_examples=300, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow])

# Characters that must never come out of the sanitiser.
BIDI_AND_ZERO_WIDTH = set("\u200b\u200c\u200d\u200e\u200f\u2060\ufeff\u061c\u00ad") | {
    chr(c) for c in range(0x202A, 0x202F)} | {chr(c) for c in range(0x2066, 0x206A)}

# Bytes that look like protocol input, mixed with arbitrary ones.
interesting = st.sampled_from([b"{", b"}", b'"', b"\n", b"\r", b"\r\n", b"\0", b"\xff",
                               b"\xff\xfb\x01", b"\x1b[31m", b'{"type":"msg"', b"\\u0000",
                               b'"ref":', b"[", b"]", b"\xc3", b"\xa9", b"/join ", b"x" * 100])
chunks = st.lists(st.one_of(st.binary(max_size=200), interesting), max_size=30)


@BUDGET
@given(chunks, st.sampled_from([4, 16, 64, protocol.MAX_FRAME]), st.booleans())
def test_frame_parser_only_raises_frame_error(parts, max_frame, through_telnet):
    splitter = LineSplitter(max_frame)
    telnet = TelnetFilter()
    for part in parts:
        for item in splitter.feed(telnet.feed(part) if through_telnet else part):
            if isinstance(item, FrameError):
                assert item.code == "frame_too_long"
                continue
            assert isinstance(item, bytes)
            assert len(item) < max_frame
            assert b"\n" not in item and b"\r" not in item and b"\0" not in item
            try:
                frame = decode(item)
            except FrameError as exc:
                assert exc.code in ("bad_utf8", "bad_frame")
            else:
                assert isinstance(frame, dict) and isinstance(frame["type"], str)


def _reference_lines(stream: bytes, max_frame: int) -> list[bytes | str]:
    """What LineSplitter must yield for a whole stream, however it is chunked."""
    parts = re.split(rb"\r|\n", stream.replace(b"\0", b""))
    complete, tail = parts[:-1], parts[-1]
    out: list[bytes | str] = ["too long" if len(p) + 1 > max_frame else p for p in complete]
    if len(tail) >= max_frame:
        out.append("too long")
    return out


@BUDGET
@given(chunks, st.sampled_from([4, 16, 64, protocol.MAX_FRAME]))
def test_frame_splitting_does_not_depend_on_chunking(parts, max_frame):
    # The splitter has a fast path for chunks of LF-ended lines; every chunking of a stream
    # must still give what the stream as a whole gives.
    splitter = LineSplitter(max_frame)
    got = [item if isinstance(item, bytes) else "too long"
           for part in parts for item in splitter.feed(part)]
    assert got == _reference_lines(b"".join(parts), max_frame)


@BUDGET
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20))
def test_decode_of_any_json_only_raises_frame_error(value):
    try:
        frame = decode(json.dumps(value))
    except FrameError:
        return
    assert isinstance(frame["type"], str)


def test_deeply_nested_json_is_a_frame_error():
    with_depth = b"[" * 100_000 + b"]" * 100_000
    try:
        decode(with_depth)
    except FrameError as exc:
        assert exc.code == "bad_frame"


@BUDGET
@given(st.binary(max_size=500))
def test_telnet_filter_never_raises_and_drops_iac(data):
    telnet = TelnetFilter()
    out = telnet.feed(data[: len(data) // 2]) + telnet.feed(data[len(data) // 2:])
    assert b"\xff" not in out
    assert len(out) <= len(data)


@BUDGET
@given(st.text(max_size=200), st.sampled_from([None, "lobby"]))
def test_parse_command_only_raises_frame_error(rest, current):
    try:
        frame = parse_command("/" + rest, current)
    except FrameError as exc:
        assert exc.code in ("unknown_command", "bad_frame", "not_in_room")
        return
    assert isinstance(frame["type"], str)
    assert frame["type"] in protocol.COMMAND_NAMES | {"privmsg", "moderate"}


#: the operators' and admins' commands that parse to a `moderate` request, and its action
MODERATION_LINES = {
    **{name: name for name in ("op", "deop", "voice", "devoice", "kick", "ban", "unban",
                               "bans", "mute", "unmute", "invite", "moderated")},
    "invite-only": "invite_only", "topic-lock": "topic_lock", "serverban": "ban",
    "serverunban": "unban", "serverbans": "bans"}


@BUDGET
@given(st.sampled_from(sorted(protocol.COMMAND_NAMES)), st.text(max_size=100),
       st.sampled_from([None, "lobby"]))
def test_parse_command_known_names_with_any_arguments(name, rest, current):
    try:
        frame = parse_command(f"/{name} {rest}", current)
    except FrameError as exc:
        # bad_nick / bad_room: /nick and /join say what is wrong with the name
        assert exc.code in ("bad_frame", "not_in_room", "bad_nick", "bad_room")
        return
    expected = {"msg": "privmsg", "exit": "quit"}.get(name, name)
    if name not in MODERATION_LINES:
        assert frame["type"] == expected
    else:  # an operator's command: one `moderate` request with the action
        assert frame["type"] == "moderate"
        assert frame["action"] == MODERATION_LINES[name]


@BUDGET
@given(st.text(max_size=300))
def test_sanitize_text_removes_controls_and_is_idempotent(text):
    clean = protocol.sanitize_text(text)
    for char in clean:
        assert unicodedata.category(char) not in ("Cc", "Cs"), repr(char)
        assert char not in BIDI_AND_ZERO_WIDTH, repr(char)
    assert protocol.sanitize_text(clean) == clean


def test_sanitize_text_removes_other_invisible_format_characters():
    # tag characters ("ASCII smuggling"), invisible math operators, interlinear annotations,
    # the Mongolian vowel separator, deprecated format controls: all category Cf, all invisible
    hidden = "".join(chr(c) for c in (0xE0001, 0xE0041, 0xE007F, 0x2061, 0x2062, 0x2063,
                                      0x2064, 0xFFF9, 0xFFFA, 0xFFFB, 0x180E, 0x206A, 0x206F))
    assert protocol.sanitize_text(f"pay{hidden}pal") == "paypal"
    assert protocol.sanitize_text("tea 🍵 café 日本 👍🏽 1️⃣") == "tea 🍵 café 日本 👍🏽 1️⃣"


@BUDGET
@given(st.text(max_size=100))
def test_sanitize_text_output_has_no_format_characters(text):
    assert not [c for c in protocol.sanitize_text(text) if unicodedata.category(c) == "Cf"]


@BUDGET
@given(st.text(st.characters(whitelist_categories=("L", "M", "N", "P", "S", "Zs")),
               max_size=100))
def test_sanitize_text_keeps_ordinary_unicode(text):
    assert protocol.sanitize_text(text) == text


@BUDGET
@given(st.text(max_size=40))
def test_names_are_clean_or_refused(name):
    for normalize, code in ((protocol.normalize_nick, "bad_nick"),
                            (protocol.normalize_room, "bad_room")):
        try:
            clean = normalize(name)
        except FrameError as exc:
            assert exc.code == code
            assert not any(unicodedata.category(c) == "Cc" for c in exc.message)
            continue
        assert clean == normalize(clean)  # normal forms are stable
        assert protocol.sanitize_text(clean) == clean
        assert unicodedata.normalize("NFKC", clean) == clean


def _parse_datagram(data: bytes) -> dict | None:
    """What a discovery client does with a received datagram: None when ignored."""
    try:
        body = discovery.decode_datagram(data)
        if body["type"] == "probe":
            return body
        return discovery.parse_server_info(body)
    except discovery.DatagramError:
        return None


header = st.sampled_from([b"", discovery.MAGIC + b" 1\n", discovery.MAGIC + b" 01\n",
                          discovery.MAGIC + b"\n"])
json_bodies = st.dictionaries(
    st.sampled_from(["type", "name", "instance", "port", "addresses", "version", "tls",
                     "fingerprint", "users", "rooms", "interval", "nonce", "event"]),
    st.one_of(st.sampled_from(["probe", "reply", "announce"]), st.text(max_size=30),
              st.integers(), st.floats(), st.booleans(), st.none(),
              st.lists(st.one_of(st.text(max_size=20), st.integers()), max_size=20)),
    max_size=13)


@BUDGET
@given(header, st.one_of(st.binary(max_size=1300), json_bodies.map(
    lambda body: json.dumps(body).encode())))
def test_discovery_parser_never_raises(prefix, payload):
    info = _parse_datagram(prefix + payload)
    if info is not None and info.get("type") != "probe":
        _assert_clean_info(info)


def _assert_clean_info(info: dict) -> None:
    for key in ("name", "instance", "fingerprint"):
        value = info[key] or ""
        assert not any(unicodedata.category(c) in ("Cc", "Cf") for c in value), (key, value)
    assert 1 <= info["port"] <= 65535
    assert len(info["name"]) <= 64


def test_discovery_fields_with_a_trailing_newline_are_refused():
    good = {"type": "reply", "name": "srv", "instance": "abc", "port": 1, "addresses": [],
            "version": 1, "tls": True, "fingerprint": "SHA256:abc", "users": 0, "rooms": 0}
    assert _parse_datagram(discovery.encode_datagram(good)) is not None
    for key in ("instance", "fingerprint"):
        body = {**good, key: good[key] + "\n"}
        assert _parse_datagram(discovery.encode_datagram(body)) is None, key
    probe = discovery.encode_datagram({"type": "probe", "nonce": "ab" * 16 + "\n"}, pad_to=1024)
    assert not discovery.is_valid_nonce(discovery.decode_datagram(probe)["nonce"])


@BUDGET
@given(st.binary(max_size=1500))
def test_discovery_parser_arbitrary_bytes(data):
    assert _parse_datagram(data) is None or isinstance(_parse_datagram(data), dict)


# --------------------------------------------------------------------------- live fuzz


def _spray(port: int, prefixes: list[bytes], pieces: list[bytes], rng: random.Random) -> int:
    """Six connections to `port`, each opening with one of `prefixes`, then 60 random blobs
    salted with `pieces`; the number of blobs the server took."""
    sent = 0
    for connection in range(6):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            sock.sendall(prefixes[connection % len(prefixes)])
            for _ in range(60):
                blob = bytearray(rng.randbytes(rng.randrange(0, 300)))
                for _ in range(rng.randrange(0, 4)):
                    blob[rng.randrange(0, len(blob) + 1):0] = rng.choice(pieces)
                try:
                    sock.sendall(bytes(blob))
                except OSError:
                    break  # the server may close a connection that broke the rules
                sent += 1
        finally:
            sock.close()
    return sent


def test_live_server_survives_random_bytes(server_factory):
    server = server_factory(handshake_timeout=2.0)
    rng = random.Random(1234)
    prefixes = [b"", b"{", b'{"type":"hello","version":1,"nick":"fz"}\n', b"fuzzer\r\n",
                b"\x16\x03\x01", b"\xff\xfd\x18"]
    pieces = [b"\n", b"\r\n", b"{", b"}", b'"type":', b'"msg"', b"\x1b[2J", b"\xff",
              b"/join x\n", b"/nick \xc3\n", b"\0", b'{"type":"join","room":"fz"}\n']
    assert _spray(server.port, prefixes, pieces, rng) >= 60
    alice = JsonClient(server.port, "alice")
    bob = JsonClient(server.port, "bob")
    try:
        answer = alice.request({"type": "msg", "room": "lobby", "text": "still alive"})
        assert answer["type"] == "message"
        assert bob.expect("message", nick="alice")["text"] == "still alive"
        wait_for(lambda: len(server.door.connections) == 2, timeout=8,
                 message="fuzz connections cleaned out")
    finally:
        alice.close()
        bob.close()
    started = time.monotonic()
    assert time.monotonic() - started < 1


# --------------------------------------------------------------------------- the IRC door

irc_pieces = st.sampled_from([b"\r\n", b"\n", b" :", b":", b"@", b";", b"=", b"\\", b"\x01",
                              b"\x01ACTION ", b"\x03", b"\xff", b"\xc3", b"#", b",", b"!",
                              b"NICK ", b"USER u 0 * :", b"JOIN ", b"PRIVMSG ", b"CAP REQ :",
                              b"CAP END", b"CHATHISTORY LATEST #", b"MODE ", b"x" * 600])


@BUDGET
@given(st.lists(st.one_of(st.binary(max_size=120), irc_pieces), max_size=20))
def test_irc_parser_only_raises_irc_error(parts):
    from chatkit.protocol import irc

    splitter = LineSplitter(irc.MAX_CLIENT_LINE)
    for item in splitter.feed(b"".join(parts)):
        if isinstance(item, FrameError):
            continue
        try:
            message = irc.parse(item)
        except irc.IrcError as exc:
            assert exc.code in ("bad_utf8", "empty", "too_long")
            continue
        written = irc.line(message.command or "X", *message.params, tags=message.tags)
        assert "\r" not in written and "\n" not in written and "\0" not in written


def test_live_irc_door_survives_random_bytes(server_factory):
    server = server_factory(handshake_timeout=2.0, irc_port=0)
    rng = random.Random(4321)
    prefixes = [b"", b"CAP LS 302\r\n", b"NICK fz\r\nUSER u 0 * :u\r\n",
                b"CAP REQ :batch echo-message\r\nNICK fy\r\nUSER u 0 * :u\r\nCAP END\r\n"
                b"JOIN #lobby\r\n", b"\x16\x03\x01", b"@a=b;c :src PRIVMSG #lobby :\x01"]
    pieces = [b"\r\n", b"\n", b" :", b"@", b"\x01ACTION ", b"\xff", b"JOIN #fz\r\n",
              b"PRIVMSG #lobby :", b"NICK \xc3\r\n", b"\0", b"CHATHISTORY BEFORE #lobby msgid=",
              b"MODE #lobby +b\r\n", b"TOPIC #lobby :", b"PART #lobby\r\n", b"WHO *\r\n"]
    assert _spray(server.irc_port, prefixes, pieces, rng) >= 60
    alice = JsonClient(server.port, "alice")
    irc_client = socket.create_connection(("127.0.0.1", server.irc_port), timeout=5)
    try:
        irc_client.sendall(b"NICK watcher\r\nUSER u 0 * :u\r\nJOIN #lobby\r\n")
        received = b""
        deadline = time.monotonic() + 5
        while b" 366 watcher #lobby " not in received and time.monotonic() < deadline:
            received += irc_client.recv(65536)
        answer = alice.request({"type": "msg", "room": "lobby", "text": "still alive"})
        assert answer["type"] == "message"
        while b"PRIVMSG #lobby :still alive" not in received and time.monotonic() < deadline:
            received += irc_client.recv(65536)
        assert b":alice!alice@chatkit PRIVMSG #lobby :still alive" in received
        wait_for(lambda: len(server.door.connections) == 2, timeout=8,
                 message="fuzz connections cleaned out")
    finally:
        alice.close()
        irc_client.close()
