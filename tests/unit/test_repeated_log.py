"""RepeatedLog (issue 13, item 6): a line repeated in a loop is written once per window, and
the next one says how many were left out."""

from __future__ import annotations

import logging

from chatkit.server.repeated_log import RepeatedLog


def test_a_repeated_line_is_written_once_per_window_then_counted(caplog):
    caplog.set_level(logging.WARNING, logger="chatkit.test")
    now = [100.0]
    repeated = RepeatedLog(logging.getLogger("chatkit.test"), window=10.0, clock=lambda: now[0])
    for i in range(500):
        repeated.warning("refuse:full", "refusing %s: server full", f"127.0.0.1:{i}")
    repeated.warning("refuse:other", "refusing %s: other", "x")  # another key: its own line
    now[0] += 10.0
    repeated.warning("refuse:full", "refusing %s: server full", "127.0.0.1:9")
    assert [r.getMessage() for r in caplog.records] == [
        "refusing 127.0.0.1:0: server full",
        "refusing x: other",
        "refusing 127.0.0.1:9: server full (same message 499 more times in the last 10 s)",
    ]
