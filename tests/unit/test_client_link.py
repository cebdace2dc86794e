"""The reconnecting link without a server: backoff, and lines while not connected."""

from __future__ import annotations

import random

import pytest

from chatkit.client.link import (
    Link,
    LinkHooks,
    LinkOptions,
    Refused,
    SessionEnded,
    backoff_delay,
)


def test_backoff_grows_with_jitter_and_is_capped():
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (10, 8), (100, 8), (10**6, 8)]:
        delays = {backoff_delay(attempt, 1, 8, rng) for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered


def offline_link(**options) -> tuple[Link, list[dict]]:
    events: list[dict] = []
    hooks = LinkHooks(nick=lambda: "alice", welcomed=lambda conn: None,
                      frame=lambda frame, quiet: None, rejoin_frames=list,
                      emit=events.append)
    return Link(LinkOptions("127.0.0.1", 9, **options), hooks), events


def test_lines_queue_while_offline_with_fresh_refs_up_to_the_limit():
    link, _ = offline_link(queue_limit=2)
    assert link.submit({"type": "msg", "room": "a", "text": "1"}) == "queued"
    assert link.submit({"type": "msg", "room": "a", "text": "2"}) == "queued"
    with pytest.raises(Refused, match="2 lines are already waiting") as caught:
        link.submit({"type": "msg", "room": "a", "text": "3"})
    assert not isinstance(caught.value, SessionEnded)
    assert link.queued() == 2
    assert not link.wait_settled(0.01)


def test_after_quit_every_line_is_refused_and_nothing_waits():
    link, events = offline_link()
    link.quit()
    link.quit()
    assert link.state == "closed"
    with pytest.raises(SessionEnded, match="the session has ended"):
        link.submit({"type": "msg", "room": "a", "text": "late"})
    assert link.wait_settled(0.01)  # nothing queued, nothing pending


def test_status_events_carry_the_state():
    link, events = offline_link()
    link.status("hello", level="error", transient=True)
    (event,) = events
    assert event["type"] == "status" and event["text"] == "hello"
    assert event["level"] == "error" and event["transient"] and event["state"] == "offline"
    assert link.address == "127.0.0.1:9"
