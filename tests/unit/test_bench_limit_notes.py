"""The server limits a benchmark notices (chatkit/bench/wire.py, chatkit/cli/bench_output.py):
announced at welcome (optional `limits`), or seen as refusals and rate_limited answers."""

from __future__ import annotations

from chatkit.bench import BenchResult
from chatkit.bench.wire import announced_limits, refusal_reason
from chatkit.cli.bench_output import limits_note, summary

CONFIG = {"target": "chatkit", "host": "127.0.0.1", "port": 1, "room": "r", "tls": True,
          "rate": None, "window": 16, "senders": 1, "size": 64, "stalled": 0}


def test_welcome_limits_are_read_when_announced_and_optional():
    welcome = (b'{"type":"welcome","nick":"b","limits":{"rate":5,"burst":10}}\n'
               b'{"type":"joined","room":"r"}\n')
    assert announced_limits(welcome) == {"rate": 5.0, "burst": 10.0}
    assert announced_limits(b'{"type":"welcome","nick":"b"}\n') == {}
    assert announced_limits(b'{"type":"welcome","limits":{"rate":"x","burst":true}}\n') == {}
    assert announced_limits(b'{"type":"welcome","limits":[1]}\n') == {}


def test_refusal_reason():
    assert refusal_reason(b"!!! too many connections from 127.0.0.1\r\n") == \
        "too many connections from 127.0.0.1"
    assert "\x1b" not in refusal_reason(b"!!! \x1b[31mred\r\n")
    assert refusal_reason(b"!!! \r\n") == "no reason given"


def test_notes_name_the_server_flags():
    announced = BenchResult(config=CONFIG, server_limits={"rate": 5, "burst": 10})
    note = limits_note(announced)
    assert note is not None
    assert "rate-limits each client (5 lines/s per client, burst 10)" in note
    assert "--rate-limit 0 --max-per-address 0" in note
    assert "note         the server rate-limits" in summary(announced)
    refused = BenchResult(config=CONFIG, rate_limited=7)
    assert "7 rate_limited answers" in (limits_note(refused) or "")
    capped = BenchResult(config=CONFIG, errors=2, error_samples=[
        "connect: refused by the server: too many connections from 127.0.0.1"] * 2)
    assert "refused connections past its caps" in (limits_note(capped) or "")
    assert limits_note(BenchResult(config=CONFIG)) is None
    assert "note" not in summary(BenchResult(config=CONFIG))
