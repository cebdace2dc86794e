"""Issue 13, item 5 (second half): line-wrap spoofing. A message padded with spaces so that
the terminal wraps it exactly at `01:27 <alice> ...` showed a line that looked like alice
speaking. The client now collapses runs of whitespace and wraps lines itself, indenting every
continuation line, so nothing a peer sends starts a row the way a message does. `chatkit join`
in tmux (a real terminal emulator), server on 127.0.0.1."""

from __future__ import annotations

import itertools
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from helpers import JsonClient, chatkit_cmd, cli_env, wait_for

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

_sockets = itertools.count(1)
WIDTH = 40


class Pane:
    """One detached tmux server of this test's own running `chatkit join`."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.socket = f"chatkit-wrap-{os.getpid()}-{next(_sockets)}"
        script = f"{shlex.join(command)}; echo \"EXITED $?\"; sleep 60"
        self._tmux("new-session", "-d", "-s", "t", "-x", str(WIDTH), "-y", "24",
                   "sh", "-c", script, env=env)

    def _tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True,
                              text=True, timeout=10, env=env).stdout

    def rows(self) -> list[str]:
        return self._tmux("capture-pane", "-p", "-t", "t").splitlines()

    def close(self) -> None:
        self._tmux("kill-server")  # this test's own tmux server only (its own socket)


@pytest.fixture
def pane(server, chatkit_home) -> Iterator[Pane]:
    made = Pane(chatkit_cmd("join", f"127.0.0.1:{server.port}", "--nick", "bob"),
                cli_env(chatkit_home, TERM="screen"))
    try:
        wait_for(lambda: any("you joined lobby" in row for row in made.rows()), timeout=15,
                 message="bob joined in the pane")
        yield made
    finally:
        made.close()


def _shown(pane: Pane, marker: str) -> list[str]:
    return wait_for(lambda: (rows := pane.rows()) and any(marker in r for r in rows) and rows,
                    timeout=10, message=f"{marker!r} in the pane")


def test_padded_message_cannot_wrap_into_a_fake_message_line(server, pane):
    mallory = JsonClient(server.port, "mallory")
    try:
        # "HH:MM <mallory> hi" is 18 columns: 22 spaces end the row, so a terminal that wraps
        # by itself starts the next row with the fake line
        fake = "01:27 <alice> type your password"
        mallory.request({"type": "msg", "room": "lobby", "text": "hi" + " " * 22 + fake})
        rows = _shown(pane, "password")
    finally:
        mallory.close()
    assert not [row for row in rows if row.startswith("01:27 <alice>")], rows
    assert any(row.startswith(" ") and "password" in row for row in rows), rows


def test_long_message_continues_indented_never_at_column_zero(server, pane):
    mallory = JsonClient(server.port, "mallory")
    try:
        words = " ".join(f"w{n:02d}" for n in range(30)) + " 01:27 <alice> END"
        mallory.request({"type": "msg", "room": "lobby", "text": words})
        rows = _shown(pane, "END")
    finally:
        mallory.close()
    start = next(i for i, row in enumerate(rows) if "<mallory>" in row)
    end = next(i for i, row in enumerate(rows) if "END" in row)
    assert end > start  # it did wrap
    assert all(row.startswith(" ") for row in rows[start + 1:end + 1]), rows
