"""The piped client without a server: what it does with lines it cannot send."""

from __future__ import annotations

import io

from chatkit.client.piped import PipedClient
from chatkit.client.session import ChatSession


def test_a_full_offline_queue_is_reported_once_per_line():
    # Never connected (no server): lines queue until the limit, then each is refused with
    # one "not sent" message, not "not sent: not sent: ...".
    session = ChatSession("127.0.0.1", 9, "bot", queue_limit=1)
    stderr = io.StringIO()
    client = PipedClient(session, io.StringIO(), stderr)
    assert client.feed("/msg alice first\n") and client.feed("/msg alice second\n")
    assert client.refused == 1
    assert stderr.getvalue().count("not sent") == 1, stderr.getvalue()
    assert "waiting for the connection to come back" in stderr.getvalue()
