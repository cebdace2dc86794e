"""Issue 13, item 1: frame sizes both ways. The server never writes a frame longer than
MAX_FRAME (long lists come in pages, texts are bounded in bytes as well as characters), and
the chatkit client neither dies nor reconnects in a loop on a line it cannot use."""

from __future__ import annotations

import json
import socket
import threading

from chatkit.client.connection import Connection
from chatkit.client.model import ChatModel
from chatkit.protocol import MAX_FRAME, MAX_NICK, MAX_ROOM, MAX_TEXT, encode
from chatkit.server.hub.history import history_frame
from chatkit.store import StoredMessage

from helpers import JsonClient

WIDE = "\U00020000"  # a CJK letter of 4 bytes in UTF-8
ROOM_CHARS = "\u4e00" * (MAX_ROOM - 2)  # 3 bytes each: long room names


def ask(client: JsonClient, frame: dict, ref: str = "a") -> dict:
    """`frame` sent as raw UTF-8 (wide text stays within the client's line limit), then the
    first frame that carries `ref`."""
    client.send_raw(json.dumps({**frame, "ref": ref}, ensure_ascii=False).encode() + b"\n")
    return json.loads(client.read_until(lambda line: json.loads(line).get("ref") == ref))


def read_reply_pages(client: JsonClient, kind: str) -> list[tuple[int, dict]]:
    """Every page of the next `kind` reply, with the byte length of its line."""
    pages: list[tuple[int, dict]] = []
    while True:
        line = client.read_until(lambda text: json.loads(text)["type"] == kind)
        frame = json.loads(line)
        pages.append((len(line.encode()) + 1, frame))
        if not frame.get("more"):
            return pages


def test_who_reply_past_max_frame_comes_in_pages_that_each_fit(server):
    # 6 users in 20 rooms of long names each: one `who` would be ~45 KB
    clients = []
    for n in range(6):
        nick = f"u{n}" + WIDE * (MAX_NICK - 3)
        client = JsonClient(server.port, nick, room=None)
        for r in range(20):
            client.request({"type": "join", "room": f"{r:02d}{ROOM_CHARS}", "history": 0})
        clients.append(client)
    watcher = clients[0]
    watcher.send({"type": "who", "ref": "w"})
    pages = read_reply_pages(watcher, "who")
    assert len(pages) > 1
    assert all(size <= MAX_FRAME for size, _ in pages)
    assert [frame["page"] for _, frame in pages] == list(range(len(pages)))
    assert all(frame["ref"] == "w" for _, frame in pages)
    model = ChatModel("x")
    for _, frame in pages:
        model.apply(frame)
    assert len(model.users) == 6  # the client merges the pages
    for client in clients:
        client.close()


def test_chatkit_client_reads_a_paged_who_without_reconnecting(server):
    others = []
    for n in range(6):
        client = JsonClient(server.port, f"p{n}" + WIDE * (MAX_NICK - 3), room=None)
        for r in range(20):
            client.request({"type": "join", "room": f"{r:02d}{ROOM_CHARS}", "history": 0})
        others.append(client)
    conn = Connection.open("127.0.0.1", server.port, "reader", tls=False)
    try:
        answer = conn.request({"type": "who"})  # the first page; before: "line longer than"
        users = list(answer["users"])
        while answer.get("more"):
            frame = conn.recv(5.0)
            assert frame is not None
            if frame["type"] == "who":
                answer = frame
                users += answer["users"]
        assert len(users) == 7
    finally:
        conn.close()
        for client in others:
            client.close()


def test_two_long_topics_make_a_rooms_reply_in_pages_that_fit(server):
    alice = JsonClient(server.port, "alice")
    topic = "\u20ac" * MAX_TEXT  # 6,000 bytes each
    for room in ("lobby", "dev"):
        alice.request({"type": "join", "room": room, "history": 0})
        assert ask(alice, {"type": "topic", "room": room, "text": topic})["type"] == "topic"
    alice.send({"type": "rooms", "ref": "r"})
    pages = read_reply_pages(alice, "rooms")
    assert len(pages) == 2 and all(size <= MAX_FRAME for size, _ in pages)
    assert sorted(r["name"] for _, f in pages for r in f["rooms"]) == ["dev", "lobby"]
    alice.close()


def test_wide_message_that_would_not_fit_a_frame_is_refused_by_bytes(server):
    nick = WIDE * MAX_NICK
    room = WIDE * MAX_ROOM
    alice = JsonClient(server.port, nick, room=room)
    answer = ask(alice, {"type": "msg", "room": room, "text": WIDE * MAX_TEXT})
    assert answer["type"] == "error" and answer["code"] == "text_too_long"
    assert "bytes" in answer["message"]
    # the longest text that is accepted makes a frame that fits, with the longest ref too
    text = WIDE * 1792
    alice.send_raw(json.dumps({"type": "msg", "room": room, "text": text, "ref": "\u0001" * 64},
                              ensure_ascii=False).encode() + b"\n")
    line = alice.read_until(lambda line: '"type":"message"' in line)
    assert len(line.encode()) + 1 <= MAX_FRAME
    alice.close()


def test_message_stored_before_the_byte_bound_is_cut_to_fit_in_history():
    row = StoredMessage(7, WIDE * MAX_ROOM, "message", WIDE * MAX_NICK, None,
                        WIDE * MAX_TEXT, 1.0)  # 8,324 bytes as it was sent
    frame = history_frame(row)
    assert len(encode(frame)) <= MAX_FRAME
    assert frame["text"].endswith("\u2026") and frame["text"].startswith(WIDE * 1000)


def test_error_quoting_a_long_request_still_fits(server):
    alice = JsonClient(server.port, "alice")
    answer = ask(alice, {"type": "privmsg", "to": WIDE * 1900, "text": "hi"})
    assert answer["code"] == "no_such_nick"
    assert len(encode(answer)) <= MAX_FRAME
    alice.close()


def _fake_server(lines: list[bytes]) -> tuple[socket.socket, threading.Thread]:
    """A listener on 127.0.0.1 that answers one client's hello with `welcome`, then `lines`."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5.0)

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(5.0)
            conn.recv(65536)  # the hello
            welcome = {"type": "welcome", "version": 1, "server": "fake", "nick": "me",
                       "id": 1, "ts": 1.0}
            conn.sendall(encode(welcome) + b"".join(lines))
            conn.recv(65536)  # until the client closes

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def test_client_skips_lines_it_cannot_use_instead_of_reconnecting():
    notice = encode({"type": "notice", "text": "still here", "id": 2, "ts": 1.0})
    listener, thread = _fake_server([b"x" * (5 * MAX_FRAME) + b"\n", b"{not json\n", notice])
    told: list[str] = []
    conn = Connection.open("127.0.0.1", listener.getsockname()[1], "me", tls=False)
    conn.on_skipped = told.append
    try:
        frame = conn.recv(5.0)  # before: ProtocolError, and the link reconnected at once
        assert frame is not None and frame["text"] == "still here"
        assert conn.skipped == 2 and len(told) == 1
    finally:
        conn.close()
        thread.join(5.0)
        listener.close()


def test_client_reads_a_frame_somewhat_over_max_frame_from_an_older_server():
    big = encode({"type": "notice", "text": "y" * (MAX_FRAME + 500), "id": 2, "ts": 1.0})
    listener, thread = _fake_server([big])
    conn = Connection.open("127.0.0.1", listener.getsockname()[1], "me", tls=False)
    try:
        frame = conn.recv(5.0)
        assert frame is not None and len(frame["text"]) == MAX_FRAME + 500
    finally:
        conn.close()
        thread.join(5.0)
        listener.close()


def test_client_model_merges_joined_and_rooms_pages():
    model = ChatModel("me")
    model.apply({"type": "joined", "room": "big", "topic": "t", "members": ["me", "a"],
                 "page": 0, "more": True})
    model.apply({"type": "joined", "room": "big", "topic": "t", "members": ["b"], "page": 1,
                 "more": False})
    assert sorted(model.rooms["big"].members) == ["a", "b", "me"]
    model.apply({"type": "rooms", "rooms": [{"name": "big", "members": 3, "topic": None}],
                 "page": 0, "more": True})
    model.apply({"type": "rooms", "rooms": [{"name": "dev", "members": 1, "topic": None}],
                 "page": 1, "more": False})
    assert sorted(model.known_rooms.values()) == ["big", "dev"]
