"""`chatkit join` without a terminal: for bots, scripts and pipelines.

Owns: reading stdin line by line (each line a message to the current room, `/command` lines as
in the interactive client, `//text` for text starting with `/`: `chatkit.client.lines` tells
which), printing every event on stdout as the plain lines of text mode (or as JSON lines with
`--json`), connection news on stderr, and leaving at EOF once the server has answered every line
(its echo or reply, matched by `ref`), or at once with status 3 when the session gives up
reconnecting. When stdout is closed early (`| head`), it leaves at once, quietly
(OutputClosed, which the CLI ends like any command whose reader went away).
"""

from __future__ import annotations

import io
import json
import select
import threading
from collections import deque
from typing import TextIO

from chatkit.client.lines import LEAVE_COMMANDS, classify, history_marker, quote_line
from chatkit.client.session import ChatSession, Refused, SessionEnded
from chatkit.errors import OutputClosed, RefusedError, UnreachableError
from chatkit.protocol import PASSWORD_REQUESTS, Frame, FrameError, parse_command, render_text

#: How long to wait at EOF for the server to answer the last lines (it may be reconnecting)
#: without any progress: a long paced queue keeps the wait alive.
SETTLE_SECONDS = 30.0
#: Lines read from stdin ahead of sending them; bounds memory when stdin is faster.
READ_AHEAD = 64


class PipedClient:
    """Prints events as they come (reader thread) while the caller feeds stdin lines.

    stdin is read on a thread of its own, so that when the session gives up reconnecting the
    client leaves at once (exit status 3) instead of waiting for a next line that, with
    `tail -f`, may never come.
    """

    def __init__(self, session: ChatSession, stdout: TextIO, stderr: TextIO,
                 json_output: bool = False) -> None:
        self.session = session
        self.stdout = stdout
        self.stderr = stderr
        self.json_output = json_output
        self.refused = 0  # lines the server answered with an error
        #: a /register, /identify... line waiting for its password: the next input line
        self._asking: Frame | None = None
        self.quit_reason: str | None = None  # from a /quit line
        self._lock = threading.Lock()
        # Guards the read-ahead below; notified by the stdin thread, by the main thread taking
        # a line, and by every status event (the session may have given up).
        self._wake = threading.Condition()
        self._lines: deque[str] = deque()
        self._eof = False
        self._read_error: BaseException | None = None
        self._done = False
        self._output_closed = False  # stdout's reader went away (`| head`)
        session.on_event = self.on_event

    def on_event(self, frame: Frame) -> None:
        if frame.get("type") == "status":
            if not frame.get("transient"):
                self._warn(str(frame.get("text")))
            with self._wake:
                self._wake.notify_all()
            return
        with self._lock:
            if frame.get("type") == "error" and frame.get("ref") is not None:
                self.refused += 1
            if self._output_closed:
                return
            try:
                if isinstance(frame.get("line"), str) and not self.json_output:
                    # a line the server refused for what it says: named, never sent again
                    self.stdout.write(f"!!! not sent: {quote_line(frame['line'])}: "
                                      f"{frame['message']}\n")
                # Every string in a server's frame was sanitised on arrival (Connection.recv).
                elif self.json_output:
                    self.stdout.write(json.dumps(frame, ensure_ascii=False) + "\n")
                else:
                    # ... and checked: a malformed frame never got this far.
                    for line in render_text(frame, self.session.nick):
                        self.stdout.write(line + "\n")
                self.stdout.flush()
            except (BrokenPipeError, ValueError):  # ValueError: written to a closed file
                self._output_closed = True
        if self._output_closed:
            with self._wake:
                self._wake.notify_all()

    def _warn(self, text: str) -> None:
        with self._lock:
            try:
                self.stderr.write(f"chatkit: {text}\n")
                self.stderr.flush()
            except (BrokenPipeError, ValueError):
                pass  # nobody reads stderr any more (`2>&1 | head`): nothing to tell

    def feed(self, line: str) -> bool:
        """Send one input line; False when it asks to leave (/quit, /exit).

        Raises UnreachableError when the session has given up: every later line would be
        refused too.
        """
        if self._asking is not None:  # the line after /register, /identify...: the password
            frame, self._asking = self._asking, None
            try:
                # reconnects log in with it (the hello): the name is never lost meanwhile
                self.session.send_login({**frame, "password": line.rstrip("\r\n")},
                                        wait=True)
            except SessionEnded as exc:
                raise UnreachableError(str(exc)) from None
            except Refused as exc:
                self._warn(str(exc))
            return True
        parsed = classify(line)
        try:
            if parsed.kind == "command" and parsed.name in PASSWORD_REQUESTS:
                # no terminal to ask on: the next line is the password (as over nc)
                self._asking = parse_command(parsed.text, self.session.current_room)
                return True
            # wait=True: stdin faster than the server's rate is slowed down, never refused
            if parsed.kind == "message":
                self.session.send_text(parsed.text, wait=True)
            elif parsed.kind == "command" or parsed.name == "help":
                marker = history_marker(parsed, self.session.current_room)
                if marker and not self.json_output:
                    with self._lock:
                        self.stdout.write(marker + "\n")
                        self.stdout.flush()
                # No help of our own without a terminal: the server's lists its commands.
                self.session.send_command(parsed.text, wait=True)
            elif parsed.name in LEAVE_COMMANDS:
                self.quit_reason = parsed.arg or None
                return False
            elif parsed.kind == "client":
                self._warn(f"/{parsed.name} only works in the interactive client; ignored")
        except SessionEnded as exc:
            raise UnreachableError(str(exc)) from None
        except Refused as exc:
            self.refused += 1
            self._warn(str(exc))  # the message says "not sent: ..."
        except FrameError as exc:
            self._warn(exc.message)
        return True

    def run(self, stdin: TextIO, settle_seconds: float = SETTLE_SECONDS) -> int:
        """Feed every stdin line, wait for the answers, leave. Returns the exit status."""
        reader = threading.Thread(target=self._read, args=(stdin,), name="chatkit-stdin",
                                  daemon=True)  # may stay blocked in read() until exit
        reader.start()
        try:
            while (line := self._next_line()) is not None:
                if not self.feed(line):
                    break
            if not self.session.wait_settled(settle_seconds) and not self._output_closed:
                self._raise_if_gave_up()
                waiting = self.session.queued()
                raise UnreachableError(
                    f"the server at {self.session.address} confirmed nothing for "
                    f"{settle_seconds:.0f} s ({waiting} line(s) still queued)")
            if self._output_closed:
                raise OutputClosed("stdout was closed")
        finally:
            with self._wake:
                self._done = True
                self._wake.notify_all()
            self.session.quit(self.quit_reason)
        if self.refused:
            raise RefusedError(f"{self.refused} line(s) were refused (see the !!! lines)")
        return 0

    def _raise_if_gave_up(self) -> None:
        if self.session.state == "failed":
            raise UnreachableError(f"{self.session.failure}; leaving")

    def _next_line(self) -> str | None:
        """The next stdin line, None at EOF; UnreachableError as soon as the session gives
        up, even while stdin is quiet."""
        with self._wake:
            while True:
                if self._output_closed or output_gone(self.stdout):
                    # Gone even when nothing was written since (`| head` took what it wanted
                    # and everything else already sat in the pipe): leave, don't wait for a
                    # write to fail.
                    self._output_closed = True
                    raise OutputClosed("stdout was closed")
                self._raise_if_gave_up()
                if self._lines:
                    line = self._lines.popleft()
                    self._wake.notify_all()  # room for the reader
                    return line
                if self._read_error is not None:
                    raise self._read_error
                if self._eof:
                    return None
                # A timeout, because a lock wait without one ignores Ctrl-C on Windows.
                self._wake.wait(1.0)

    def _read(self, stdin: TextIO) -> None:
        try:
            for line in stdin:
                with self._wake:
                    while len(self._lines) >= READ_AHEAD and not self._done:
                        self._wake.wait()
                    if self._done:
                        return
                    self._lines.append(line)
                    self._wake.notify_all()
        except Exception as exc:  # e.g. undecodable input: reported by the main thread
            with self._wake:
                self._read_error = exc
                self._wake.notify_all()
            return
        with self._wake:
            self._eof = True
            self._wake.notify_all()


def output_gone(stream: TextIO) -> bool:
    """Whether the reader of `stream` (a pipe) has gone away, without writing to it: the
    write end of a pipe whose read end closed reports POLLERR."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):
        return False  # not a file (a test's StringIO): writes will tell
    poller = select.poll()
    poller.register(fd, 0)  # no events asked for: only errors and hang-ups are reported
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
