"""`chatkit join` without a terminal: for bots, scripts and pipelines.

Owns: reading stdin line by line (each line a message to the current room, `/command` lines as
in the interactive client, `//text` for text starting with `/`), printing every event on stdout
as the plain lines of text mode (or as JSON lines with `--json`), connection news on stderr, and
leaving at EOF once the server has answered every line (its echo or reply, matched by `ref`).
"""

from __future__ import annotations

import json
import threading
from typing import TextIO

from chatkit.client.session import ChatSession, Refused
from chatkit.errors import RefusedError, UnreachableError
from chatkit.protocol import Frame, render_text

#: How long to wait at EOF for the server to answer the last lines (it may be reconnecting).
SETTLE_SECONDS = 30.0
LOCAL_ONLY = frozenset({"clear", "bell", "ignore", "unignore"})


class PipedClient:
    """Prints events as they come (reader thread) while the caller feeds stdin lines."""

    def __init__(self, session: ChatSession, stdout: TextIO, stderr: TextIO,
                 json_output: bool = False) -> None:
        self.session = session
        self.stdout = stdout
        self.stderr = stderr
        self.json_output = json_output
        self.refused = 0  # lines the server answered with an error
        self._lock = threading.Lock()
        session.on_event = self.on_event

    def on_event(self, frame: Frame) -> None:
        with self._lock:
            if frame.get("type") == "status":
                if not frame.get("transient"):
                    self.stderr.write(f"chatkit: {frame.get('text')}\n")
                    self.stderr.flush()
                return
            if frame.get("type") == "error" and frame.get("ref") is not None:
                self.refused += 1
            # Every string in a server's frame was sanitised on arrival (Connection.recv).
            if self.json_output:
                self.stdout.write(json.dumps(frame, ensure_ascii=False) + "\n")
            else:
                try:
                    lines = render_text(frame, self.session.nick)
                except (KeyError, TypeError, ValueError):  # a frame missing a field
                    lines = [f"!!! unreadable {frame.get('type')!r} frame from the server"]
                for line in lines:
                    self.stdout.write(line + "\n")
            self.stdout.flush()

    def _warn(self, text: str) -> None:
        with self._lock:
            self.stderr.write(f"chatkit: {text}\n")
            self.stderr.flush()

    def feed(self, line: str) -> bool:
        """Send one input line; False when it asks to leave (/quit, /exit)."""
        text = line.rstrip("\r\n")
        if not text.strip():
            return True
        try:
            if text.startswith("//"):
                self.session.send_text(text[1:])
            elif text.startswith("/"):
                name, _, rest = text[1:].partition(" ")
                name = name.lower()
                if name in ("quit", "exit"):
                    return False
                if name in LOCAL_ONLY:
                    self._warn(f"/{name} only works in the interactive client; ignored")
                    return True
                self.session.send_command(text)
            else:
                self.session.send_text(text)
        except Refused as exc:
            self.refused += 1
            self._warn(f"not sent: {exc}")
        return True

    def run(self, stdin: TextIO, settle_seconds: float = SETTLE_SECONDS) -> int:
        """Feed every stdin line, wait for the answers, leave. Returns the exit status."""
        reason = None
        try:
            for line in stdin:
                if not self.feed(line):
                    _, _, reason = line.strip().partition(" ")
                    break
            if not self.session.wait_settled(settle_seconds):
                waiting = self.session.queued()
                raise UnreachableError(
                    f"the server at {self.session.address} did not confirm every line "
                    f"within {settle_seconds:.0f} s ({waiting} still queued)")
        finally:
            self.session.quit(reason or None)
        if self.refused:
            raise RefusedError(f"{self.refused} line(s) were refused (see the !!! lines)")
        return 0
