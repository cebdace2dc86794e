"""Issue 13, item 5: invisible and look-alike names. A Hangul filler (U+3164, U+1160, U+115F,
U+FFA0) or any other default-ignorable code point draws as nothing, so `"\\u3164alice"` looked
exactly like `alice`, and `"\\u3164\\u3164"` was a room with no visible name. Every way in (hello,
a nick change, a join, text mode) now refuses them. Real server on 127.0.0.1."""

from __future__ import annotations

import pytest

from helpers import JsonClient, TextClient

INVISIBLE_NICKS = ["\u3164alice", "alice\u1160", "\u115falice", "al\uffa0ice", "alice\ufe0f",
                   "alice\U000e0041"]


@pytest.mark.parametrize("nick", INVISIBLE_NICKS)
def test_filler_nick_cannot_register_next_to_alice(server, nick):
    alice = JsonClient(server.port, "alice")
    impostor = JsonClient(server.port)
    try:
        impostor.send({"type": "hello", "version": 1, "nick": nick, "room": "lobby"})
        refused = impostor.expect("error")
        assert refused["code"] == "bad_nick"
        assert "U+" in refused["message"]  # the invisible character is named, not shown
        assert [f for f in impostor.frames if f["type"] == "welcome"] == []
    finally:
        impostor.close()
        alice.close()


def test_filler_nick_change_is_refused(server):
    bob = JsonClient(server.port, "bob")
    try:
        answer = bob.request({"type": "nick", "nick": "\u3164alice"})
        assert answer["type"] == "error" and answer["code"] == "bad_nick"
    finally:
        bob.close()


@pytest.mark.parametrize("room", ["\u3164\u3164", "#\u3164", "lobby\u1160", "\u2800"])
def test_invisible_room_cannot_be_created(server, room):
    bob = JsonClient(server.port, "bob")
    try:
        answer = bob.request({"type": "join", "room": room})
        assert answer["type"] == "error" and answer["code"] == "bad_room"
        rooms = bob.request({"type": "rooms"})
        names = [entry["name"] if isinstance(entry, dict) else entry
                 for entry in rooms.get("rooms", [])]
        assert all(name.isprintable() and "\u3164" not in name and "\u1160" not in name
                   for name in names)
    finally:
        bob.close()


def test_text_mode_filler_nick_is_refused(server):
    person = TextClient(server.port)
    try:
        person.expect_prompt()
        person.say("\u3164alice")
        line = person.expect("not allowed")
        assert "U+1160" in line  # NFKC turns U+3164 into U+1160; named either way
    finally:
        person.close()
