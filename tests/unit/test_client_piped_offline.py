"""The piped client without a server: what it does with lines it cannot send yet."""

from __future__ import annotations

import io
import threading

import pytest

from chatkit.client.piped import PipedClient
from chatkit.client.session import ChatSession, Refused
from chatkit.errors import UnreachableError


def test_a_full_queue_refuses_a_typed_line_by_name_once():
    # The interactive client cannot block the user's typing: past the queue's limit a line is
    # refused, with one "not sent" message naming why (not "not sent: not sent: ...").
    session = ChatSession("127.0.0.1", 9, "bot", queue_limit=1)
    assert session.submit({"type": "privmsg", "to": "alice", "text": "first"}) == "queued"
    with pytest.raises(Refused) as refused:
        session.submit({"type": "privmsg", "to": "alice", "text": "second"})
    assert str(refused.value).count("not sent") == 1
    assert "waiting for the connection to come back" in str(refused.value)


def test_a_pipe_faster_than_the_queue_waits_instead_of_losing_lines():
    # Piped input is slowed down when the queue is full, never refused: the second line waits
    # for room. Here the session ends instead, and the wait ends with it (exit status 3).
    session = ChatSession("127.0.0.1", 9, "bot", queue_limit=1)
    stderr = io.StringIO()
    client = PipedClient(session, io.StringIO(), stderr)
    assert client.feed("/msg alice first\n")
    outcome: list[BaseException | bool] = []

    def second() -> None:
        try:
            outcome.append(client.feed("/msg alice second\n"))
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    feeder = threading.Thread(target=second)
    feeder.start()
    feeder.join(0.3)
    assert feeder.is_alive() and not outcome, "the line must wait for room, not be refused"
    assert client.refused == 0 and "not sent" not in stderr.getvalue()
    session.quit()
    feeder.join(5)
    assert not feeder.is_alive()
    assert isinstance(outcome[0], UnreachableError)
