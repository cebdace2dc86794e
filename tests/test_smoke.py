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
