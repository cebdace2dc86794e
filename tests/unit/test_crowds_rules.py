"""The crowd bookkeeping (chatkit/server/hub/crowds.py), its text form and the client model's
view of it, without sockets."""

from __future__ import annotations

from chatkit.client.model import ChatModel
from chatkit.protocol.text import render_text
from chatkit.server.hub.crowds import MAX_PRESENCE_NAMES, Crowds


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_room_is_a_crowd_only_above_the_size_and_never_with_size_zero():
    assert not Crowds(3).is_crowd(3) and Crowds(3).is_crowd(4)
    assert not Crowds(0).is_crowd(100_000)


def test_the_last_word_per_person_wins_and_summaries_wait_for_the_interval():
    clock = Clock()
    crowds = Crowds(3, interval=2.0, clock=clock)
    crowds.note("Lobby", "ann", True)
    crowds.note("lobby", "bo", True)
    crowds.note("lobby", "bo", False)  # came and went before anyone heard: "left"
    crowds.note("lobby", "cy", False)
    crowds.note("lobby", "cy", True)  # left and came back: "joined"
    [(key, changes)] = crowds.due()
    assert key == "lobby"
    assert changes.summary() == (["ann", "cy"], ["bo"], 2, 1)
    crowds.note("lobby", "di", True)
    assert crowds.due() == []  # within 2 s of the last summary
    clock.now += 2.0
    [(_, changes)] = crowds.due()
    assert changes.summary() == (["di"], [], 1, 0)
    clock.now += 2.0
    assert crowds.due() == [] and crowds.changes == {}  # a quiet room is forgotten


def test_a_summary_names_at_most_twenty_of_each_and_counts_all():
    crowds = Crowds(3, clock=Clock())
    for number in range(50):
        crowds.note("lobby", f"n{number}", True)
    [(_, changes)] = crowds.due()
    joined, left, joined_count, left_count = changes.summary()
    assert len(joined) == MAX_PRESENCE_NAMES and joined_count == 50 and left_count == 0


def test_settle_and_rename_keep_pending_words_true():
    crowds = Crowds(3, clock=Clock())
    crowds.note("lobby", "ann", True)
    crowds.note("dev", "ann", True)
    crowds.renamed(["lobby"], "ann", "anna")
    crowds.settle("dev", "ann")  # announced on its own in dev: nothing pending there
    due = dict(crowds.due())
    assert due["lobby"].summary() == (["anna"], [], 1, 0)
    assert "dev" not in due


def test_text_mode_shows_a_summary_in_one_line():
    frame = {"type": "presence", "room": "lobby", "count": 10234, "joined": ["ann", "bo"],
             "left": ["cy"], "joined_count": 5, "left_count": 1}
    assert render_text(frame) == [
        "*** lobby: 5 joined: ann, bo and 3 more; 1 left: cy (10,234 here)"]
    partial = {"type": "joined", "room": "lobby", "topic": None, "members": ["a", "b"],
               "count": 10234, "partial": True}
    assert render_text(partial) == [
        "*** you joined lobby (10,234 here; /who lobby lists them all)"]


def test_the_model_counts_joins_parts_and_summaries():
    model = ChatModel("me")
    model.apply({"type": "joined", "room": "lobby", "topic": None, "members": ["me", "ann"],
                 "count": 2})
    model.apply({"type": "join", "room": "lobby", "nick": "bo"})
    model.apply({"type": "join", "room": "lobby", "nick": "bo"})  # known: not counted twice
    assert model.member_count("lobby") == 3
    model.apply({"type": "part", "room": "lobby", "nick": "ann", "reason": None})
    model.apply({"type": "nick", "old": "bo", "new": "bob"})
    assert model.member_count("lobby") == 2 and model.members("lobby") == ["bob", "me"]
    model.apply({"type": "presence", "room": "lobby", "count": 300, "joined": ["cy"],
                 "left": ["bob"], "joined_count": 299, "left_count": 1})
    assert model.member_count("lobby") == 300 and model.members("lobby") == ["cy", "me"]
    assert not model.members_complete("lobby")


def test_a_server_without_counts_still_gives_a_count():
    model = ChatModel("me")
    model.apply({"type": "joined", "room": "lobby", "topic": None, "members": ["me", "ann"]})
    model.apply({"type": "join", "room": "lobby", "nick": "bo"})
    assert model.member_count("lobby") == 3 and model.members_complete("lobby")
