"""`chatkit join` inside tmux: a real terminal emulator that answers prompt_toolkit's queries
itself (cursor position, ...), as the terminals people use do; pexpect does not."""

from __future__ import annotations

import itertools
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from helpers import chatkit_cmd, cli_env, wait_for

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

_sockets = itertools.count(1)


class TmuxPane:
    """One detached tmux session (on a tmux server of its own) running one command."""

    def __init__(self, command: list[str], env: dict[str, str], width: int = 100,
                 height: int = 24) -> None:
        self.socket = f"chatkit-test-{os.getpid()}-{next(_sockets)}"
        # The shell prints the exit status, then waits (bounded) so the pane can be read.
        script = f"{shlex.join(command)}; echo \"EXITED $?\"; sleep 60"
        self._tmux("new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height),
                   "sh", "-c", script, env=env)

    def _tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True,
                                text=True, timeout=10, env=env)
        return result.stdout

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "t", *keys)

    def text(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "t")

    def wait_for_text(self, text: str, timeout: float = 10.0) -> str:
        return str(wait_for(lambda: text in (screen := self.text()) and screen,
                            timeout=timeout, message=f"{text!r} in the pane"))

    def close(self) -> None:
        self._tmux("kill-server")  # this test's own tmux server only (its own socket)


@pytest.fixture
def tmux_join(server, chatkit_home) -> Iterator:
    panes: list[TmuxPane] = []

    def start(*args: str, width: int = 100) -> TmuxPane:
        pane = TmuxPane(chatkit_cmd("join", f"127.0.0.1:{server.port}", *args),
                        cli_env(chatkit_home, TERM="screen"), width=width)
        panes.append(pane)
        return pane

    yield start
    for pane in panes:
        pane.close()


def test_ctrl_c_twice_leaves_in_tmux(tmux_join):
    pane = tmux_join("--nick", "tina")
    pane.wait_for_text("you joined lobby")
    pane.keys("C-c")
    # the prompt redrawn under the hint: tmux has been asked where the cursor is, and answers
    pane.wait_for_text("again to leave (or type /quit)\nlobby>")
    pane.keys("C-c")
    assert "EXITED 0" in pane.wait_for_text("EXITED")


def test_narrow_terminal_keeps_the_connection_state_in_the_toolbar(tmux_join):
    pane = tmux_join("--nick", "nora", width=40)
    pane.wait_for_text("you joined lobby")
    wait_for(lambda: pane.text().rstrip().splitlines()[-1].startswith(" connected | lobby"),
             message="the toolbar starts with the state")
    assert all(len(line) <= 40 for line in pane.text().splitlines())
