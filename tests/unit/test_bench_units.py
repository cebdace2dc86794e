"""`chatkit bench` without sockets: settings and their wording, the processes rule, the wire's
bytes, merging shard reports, and how the command line shows a run."""

from __future__ import annotations

import array
import io
import os
import re

import pytest

from chatkit.bench import BenchConfig, BenchResult, SettingError, auto_processes, run_bench, wire
from chatkit.bench.merge import merge
from chatkit.cli.bench import FLAGS
from chatkit.cli.bench_output import ProgressLine, main_json, summary
from chatkit.errors import ConfigError


@pytest.mark.parametrize("changes", [{"senders": 3, "clients": 2}, {"rate": 0.0},
                                     {"size": 5000}, {"target": "xmpp"}, {"window": 0},
                                     {"processes": 0}, {"processes": 3, "clients": 2}])
def test_bad_settings_are_config_errors(changes):
    with pytest.raises(ConfigError):
        run_bench(BenchConfig(**changes))


@pytest.mark.parametrize("ref", [0, 17, -3, 2**70, "r1", "ünï \"quoted\" \\ \n", "", True, 1.5])
def test_echo_splice_equals_encoding_with_ref(ref):
    """The fan-out's shortcut for the sender's echo gives exactly the bytes of encode()."""
    from chatkit.protocol import encode, encode_with_ref

    frame = {"type": "message", "room": "lobby", "nick": "él", "text": "hi 👋 \"x\"",
             "action": False, "id": 7, "ts": 1764000000.123}
    assert encode_with_ref(encode(frame), ref) == encode({**frame, "ref": ref})


def test_auto_processes_rule():
    assert auto_processes(1) == auto_processes(99) == 1  # small runs stay in one process
    assert auto_processes(100) == min(os.cpu_count() or 1, 2)
    assert auto_processes(100_000) == min(os.cpu_count() or 1, 4)
    # at a set rate: by the deliveries expected, so a human-rate run stays in one process
    assert auto_processes(100, rate=200) == auto_processes(500, rate=200) == 1
    assert auto_processes(1000, rate=200) == min(os.cpu_count() or 1, 2)


def _part(**changes):
    part = {"receivers": 1, "connect_s": 0.1, "deliveries": 0, "first_send": 0,
            "last_delivery": 0, "samples": array.array("q"), "stride": 1, "max_latency": 0,
            "lost": [0], "duplicated": [0], "reordered": [0], "errors": 0,
            "error_samples": [], "stalled": {}, "stalled_gone": []}
    return {**part, **changes}


def test_merge_of_worker_results():
    """Strides, losses against the global sequence numbers, stalled clients seen elsewhere."""
    result = BenchResult(config={})
    merge(result, [10], [
        _part(receivers=2, deliveries=20, first_send=100, last_delivery=2_000_000_100,
              samples=array.array("q", range(1, 9)), stride=1, max_latency=50, lost=[0],
              stalled={"a": False}),
        _part(receivers=1, connect_s=0.3, deliveries=7, first_send=200,
              last_delivery=1_000_000_000, samples=array.array("q", [100, 200]), stride=4,
              max_latency=300, lost=[3], duplicated=[1], errors=1, error_samples=["x"],
              stalled={"b": False, "c": True}, stalled_gone=["a"]),
    ])
    assert (result.sent, result.deliveries, result.expected_deliveries) == (10, 27, 30)
    assert (result.clients_connected, result.connect_s, result.elapsed_s) == (6, 0.3, 2.0)
    assert (result.lost, result.duplicated, result.errors) == (3, 1, 1)
    assert result.per_sender == [{"sender": 0, "sent": 10, "lost": 3, "duplicated": 1,
                                  "reordered": 0}]
    # the stride-1 shard thinned to every 4th sample: 1, 5, then 100, 200 of the other
    assert result.latency_ms["p50"] == 5 / 1e6 and result.latency_ms["max"] == 300 / 1e6
    assert result.stalled_disconnected == 2  # a: quit seen by another shard; c: TCP closed


def test_setting_errors_name_settings_not_flags():
    """Below cli/ the message names the setting; the command line words it with its flags."""
    with pytest.raises(SettingError) as caught:
        run_bench(BenchConfig(clients=2, senders=3))
    assert "--" not in str(caught.value)
    assert str(caught.value) == ("the number of senders must be between 0 and "
                                 "the number of clients")
    assert caught.value.worded(FLAGS) == "--senders must be between 0 and --clients"
    with pytest.raises(SettingError) as caught:
        BenchConfig(rate=float("inf")).validate()
    assert caught.value.worded(FLAGS) == "--rate must be a positive number below 10,000,000"


@pytest.mark.parametrize("target", ["chatkit", "redis"])
def test_encoder_batches_carry_markers_the_receiver_finds(target):
    encoder = wire.MessageEncoder(target, "abc123", "room \"x\"", 64)
    data = encoder.batch(sid=2, first=5, count=3)
    marks = wire.marker("abc123").findall(data)
    assert [(int(s), int(q)) for s, q, _ in marks] == [(2, 5), (2, 6), (2, 7)]
    assert not wire.marker("other1").findall(data)  # another run's messages do not count
    if target == "chatkit":
        lines = data.splitlines()
        assert len(lines) == 3 and all(line.startswith(b'{"type":"msg"') for line in lines)
        assert b'"ref":5,"text":"@@abc123:2:5:' in lines[0]
        assert all(len(re.search(rb'"text":"([^"]*)"', line)[1]) == 64 for line in lines)
    else:
        assert data.count(b"*3\r\n$7\r\nPUBLISH\r\n") == 3


def test_wire_reads_errors_and_quits():
    refused = b'{"type":"error","code":"bad_password","message":"wrong password"}\n'
    assert [wire.describe_error(line) for line in wire.error_lines(refused)] == [
        "bad_password: wrong password"]
    assert wire.describe_error(b"not json \x1b[31m").startswith("not json")
    quits = (b'{"type":"quit","nick":"a"}\n{"type":"quit","nick":["odd"]}\n'
             b'{"type":"quit" broken\n')
    assert wire.quit_nicks(quits) == ["a"]
    assert wire.redis_error(b"+OK\r\n-ERR wrong\r\n") == "-ERR wrong"
    assert wire.redis_error(b":3\r\n") is None


def _result(**changes):
    config = {"target": "chatkit", "host": "127.0.0.1", "port": 12345, "room": "bench-abc",
              "tls": False, "senders": 2, "rate": None, "window": 16, "size": 64, "stalled": 1}
    values = {"clients_connected": 5, "connect_s": 0.25, "sent": 40, "deliveries": 160,
              "expected_deliveries": 160, "elapsed_s": 0.5, "deliveries_per_s": 320.0,
              "messages_per_s": 80.0, "latency_ms": {"p50": 1.0, "p95": 2.0, "p99": 3.0,
                                                     "max": 4.5},
              "stalled_disconnected": 1, "generator_cpu_s": 0.4, "generator_cpu_util": 0.8,
              "generator_cpu_util_max": 0.95}
    return BenchResult(config=config, **{**values, **changes})


def test_summary_text():
    assert summary(_result()).splitlines() == [
        "target       chatkit 127.0.0.1:12345 room bench-abc",
        "load         5 clients, 2 senders, max (window 16), 64 B text",
        "connect      5 clients in 0.25 s",
        "sent         40 messages (80/s)",
        "deliveries   160 of 160 in 0.50 s = 320/s",
        "latency ms   p50 1.00  p95 2.00  p99 3.00  max 4.50",
        "integrity    lost 0, duplicated 0, out of order 0",
        "errors       0",
        "stalled      1 non-reading clients, 1 disconnected by the server",
        "generator    1 process, 0.40 CPU s, 0.80 cores while sending (busiest process 95%)"
        "  (the generator may have been the bottleneck)",
    ]
    odd = summary(_result(errors=2, error_samples=["a", "b"], generator_processes=2,
                          generator_cpu_util_max=0.5))
    assert "errors       2 (a; b)" in odd and "generator    2 processes," in odd


def test_json_line():
    line = main_json(_result())
    assert "\n" not in line and '"ok":true' in line and '"deliveries":160' in line


def test_progress_line_ends_with_the_last_report(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    line = ProgressLine()
    line.show("sending", 10, 100, 0, 5)
    assert err.getvalue().startswith("\r") and "sending" in err.getvalue()
    assert "clients 5" in err.getvalue() and not err.getvalue().endswith("\n")
    line.show("done", 10, 100, 0, 5)
    assert err.getvalue().endswith("\n")
