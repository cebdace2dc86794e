"""End-to-end smoke: a text client and a JSON client talk through a real server."""

from helpers import JsonClient, TextClient


def test_text_and_json_clients_chat(server):
    alice = TextClient(server.port, "alice")
    bob = JsonClient(server.port, "bob")
    alice.expect("*** bob joined lobby")
    alice.say("hello bob")
    assert bob.expect("message")["text"] == "hello bob"
    echo = bob.request({"type": "msg", "room": "lobby", "text": "hi alice"})
    assert echo["type"] == "message" and echo["nick"] == "bob"
    assert alice.expect("<bob>") == "[lobby] <bob> hi alice"
    alice.say("/quit bye")
    assert bob.expect("quit")["reason"] == "bye"
    alice.close()
    bob.close()


def test_ipv6_server_on_the_v6_loopback(server_factory):
    import socket

    import pytest

    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    server = server_factory(host="::1")
    assert server.addresses() == [f"[::1]:{server.port}"]
    alice = JsonClient(server.port, "alice", host="::1")
    bob = JsonClient(server.port, "bob", host="::1")
    alice.request({"type": "msg", "room": "lobby", "text": "over IPv6"})
    assert bob.expect("message")["text"] == "over IPv6"
    alice.close()
    bob.close()


def test_client_connections_use_keepalive(server):
    # Without it a client whose network vanished silently would wait in recv() for ever and
    # never start reconnecting.
    import socket

    from chatkit.client.connection import Connection

    conn = Connection.open("127.0.0.1", server.port, "kept", tls=False)
    try:
        assert conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    finally:
        conn.quit()
