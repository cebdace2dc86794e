"""`chatkit bench` against a server whose own limits shape the run (issue 12): it says so, and
which server flags lift them, instead of an SSL error or a bare `lost 4800`."""

from __future__ import annotations

import json
import subprocess

import pytest

from helpers import chatkit_cmd, cli_env

LIFT = "--rate-limit 0 --max-per-address 0"


def bench(home: str, port: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(chatkit_cmd("bench", f"127.0.0.1:{port}", *args), capture_output=True,
                          text=True, timeout=60, env=cli_env(home))


@pytest.mark.parametrize("args", [[], ["--no-tls"], ["--processes", "2"]])
def test_past_max_per_address_bench_says_refused_and_which_flags(server_factory, tmp_path,
                                                                   args):
    server = server_factory(max_per_address=4)
    done = bench(str(tmp_path), server.port, "--clients", "8", "--senders", "8",
                 "--duration", "0.5", *args)
    assert done.returncode == 4, done.stderr  # refused, as the user guide says
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "refused by the server: too many connections from 127.0.0.1" in lines[0]
    assert LIFT in lines[0] and "SSL" not in lines[0] and "WRONG_VERSION" not in lines[0]


def test_a_rate_limited_server_is_named_with_the_flags(server_factory, tmp_path):
    server = server_factory(rate_limit=5, max_per_address=0)
    done = bench(str(tmp_path), server.port, "--clients", "2", "--senders", "1",
                 "--duration", "1", "--json")
    data = json.loads(done.stdout)
    assert data["rate_limited"] or data["server_limits"].get("rate") == 5
    assert done.returncode == (0 if data["ok"] else 1), done.stderr
    human = bench(str(tmp_path), server.port, "--clients", "2", "--senders", "1",
                  "--duration", "1")
    note = [line for line in human.stdout.splitlines() if line.startswith("note")]
    assert len(note) == 1 and "rate-limits each client" in note[0] and LIFT in note[0], \
        human.stdout


def test_an_open_server_gets_no_note(server_factory, tmp_path):
    server = server_factory(rate_limit=0, max_per_address=0)
    done = bench(str(tmp_path), server.port, "--clients", "2", "--messages", "5")
    assert done.returncode == 0, done.stderr
    assert "note" not in done.stdout
