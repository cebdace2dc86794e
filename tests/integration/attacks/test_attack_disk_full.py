"""Issue 13, item 8: the disk fills up. Before: the log said `cannot rollback - no transaction is
active` (1,941 times) and never "disk full" (the ROLLBACK after a failed COMMIT hid the real
error), and a topic change answered `store_failed` was applied anyway. A full disk is
simulated with SQLite's `PRAGMA max_page_count` on the server's own connection."""

from __future__ import annotations

import logging

from helpers import JsonClient


def _fill_the_disk(server) -> None:
    store = server.bus.store
    with store._lock:
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count = {pages}")


def _free_the_disk(server) -> None:
    store = server.bus.store
    with store._lock:
        store._conn.execute("PRAGMA max_page_count = 1073741823")


def _send_until_refused(client: JsonClient, count: int = 200) -> list[dict]:
    """Send `count` messages (~1.5 KB each); the answers (echoes or errors), in order."""
    answers = []
    for i in range(count):
        answers.append(client.request({"type": "msg", "room": "lobby",
                                       "text": f"{i} " + "x" * 1500}))
    return answers


def test_disk_full_is_logged_as_disk_full_once_and_nothing_accepted_is_lost(
        server_factory, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="chatkit")
    server = server_factory(db=str(tmp_path / "m.db"))
    alice = JsonClient(server.port, "alice")
    try:
        _fill_the_disk(server)
        answers = _send_until_refused(alice)
        refused = [a for a in answers if a["type"] == "error"]
        accepted = [a for a in answers if a["type"] == "message"]
        assert refused and all(a["code"] == "store_failed" for a in refused)
        assert len(refused) > 5
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert not any("cannot rollback" in e for e in errors), errors[:3]
        assert errors and "the disk is full" in errors[0], errors[:3]
        assert len(errors) <= 2, f"{len(errors)} error lines for one full disk"
        _free_the_disk(server)
        assert alice.request({"type": "msg", "room": "lobby", "text": "room again"}
                             )["type"] == "message"
        # Every message that was echoed (accepted) is in the log; none that was refused.
        stored = {m.text for m in server.bus.store.room_history("lobby", limit=1000)}
        assert {a["text"] for a in accepted} | {"room again"} == stored
    finally:
        alice.close()


def test_a_topic_change_refused_for_a_full_disk_is_not_applied(server_factory, tmp_path):
    server = server_factory(db=str(tmp_path / "m.db"))
    alice = JsonClient(server.port, "alice")
    bob = JsonClient(server.port, "bob")
    try:
        assert alice.request({"type": "topic", "room": "lobby", "text": "before"}
                             )["text"] == "before"
        _fill_the_disk(server)
        answers = _send_until_refused(alice)  # fill the last free page
        assert answers[-1]["type"] == "error"
        answer = alice.request({"type": "topic", "room": "lobby", "text": "x" * 1900})
        assert answer["type"] == "error" and answer["code"] == "store_failed"
        assert bob.request({"type": "topic", "room": "lobby"})["text"] == "before"
        rooms = bob.request({"type": "rooms"})["rooms"]
        assert [r["topic"] for r in rooms if r["name"] == "lobby"] == ["before"]
        _free_the_disk(server)
        assert alice.request({"type": "topic", "room": "lobby", "text": "after"}
                             )["text"] == "after"
        assert bob.request({"type": "topic", "room": "lobby"})["text"] == "after"
    finally:
        alice.close()
        bob.close()
