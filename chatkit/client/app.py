"""The interactive terminal UI of `chatkit join`, built on a prompt_toolkit `PromptSession`.

Owns: the input line (file history, suggestions from history, Ctrl-R search, Tab completion),
printing events above the input line without disturbing what is being typed, the bell, the
bottom toolbar, the client's own commands (/help /clear /bell /ignore /unignore /quit /exit)
and the keys Ctrl-C and Ctrl-D.

Threads: the session's reader thread only hands frames over to the event loop
(`call_soon_threadsafe`); rendering, printing and all UI state live on the loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from pathlib import Path

from prompt_toolkit import PromptSession, print_formatted_text
from prompt_toolkit.application.current import get_app_session
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.completion import CompleteEvent, get_common_complete_suffix
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.patch_stdout import patch_stdout
from prompt_toolkit.shortcuts import clear as clear_screen

from chatkit import paths
from chatkit.client.accounts import FORGET, REMEMBER, AccountLines
from chatkit.client.completer import chat_completer
from chatkit.client.lines import CLIENT_COMMANDS, LEAVE_COMMANDS, classify, history_marker
from chatkit.client.render import (
    STYLE,
    Rendered,
    ToolbarFacts,
    View,
    render_event,
    render_lines,
    render_toolbar,
    should_ring,
    wrap_fragments,
)
from chatkit.client.session import ChatSession, Refused
from chatkit.client.settings import BELL_MODES, Settings
from chatkit.protocol import CommandSpec, Frame, FrameError, name_key, normalize_nick

log = logging.getLogger("chatkit.client")

TRANSCRIPT_LINES = 2000  # what the app remembers of what it printed (for /clear and tests)


def history_path() -> Path:
    return paths.input_history_file()


def merged_commands(server: list[CommandSpec]) -> list[CommandSpec]:
    """The server's commands with the client's own; the client's wins where both have one."""
    merged = {spec.name.lower(): spec for spec in server}
    merged.update({spec.name: spec for spec in CLIENT_COMMANDS})
    return list(merged.values())


class ChatApp:
    """The UI around one ChatSession. Build it before `session.connect()` so no event is
    missed, then `run()` (or `await run_async()`) until the user leaves; returns 0.

    About 300 lines: the event hand-off, keys and the client's own commands all act on the
    one prompt_toolkit session. Drawing (events, toolbar) is already pure in `render`; the
    client commands (/help /bell /ignore) are the next piece to move out if it grows.
    """

    def __init__(self, session: ChatSession, settings: Settings | None = None,
                 history: History | None = None) -> None:
        self.session = session
        self.settings = settings or Settings.load()
        self.transcript: deque[str] = deque(maxlen=TRANSCRIPT_LINES)
        self._early: list[Frame] = []  # events that arrived before the loop ran
        self._handoff_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[Frame] | None = None
        self._ctrl_c_armed = False
        self._leaving = False
        # pin notices (a certificate pinned on first use), shown again after the history that
        # followed them so they never scroll away unseen
        self._pin_notes: list[Frame] = []
        self._history_after_note = 0
        session.on_event = self._from_reader
        #: /register, /identify... with a hidden prompt; /remember, /forget (client/accounts)
        self.accounts = AccountLines(session, lambda text: self.say(text), self._ask_hidden)
        self.completer = chat_completer(
            commands=lambda: merged_commands(self.session.commands), nicks=self.session.nicks,
            rooms=self.session.room_names, joined_rooms=self.session.joined_rooms,
            ignored=lambda: list(self.settings.ignored), bell_modes=BELL_MODES)
        self.prompt_session: PromptSession[str] = PromptSession(
            message=self._prompt_message,
            history=history if history is not None else self._file_history(),
            auto_suggest=AutoSuggestFromHistory(),
            completer=self.completer,
            complete_while_typing=True,
            bottom_toolbar=self.toolbar,
            style=STYLE,
            key_bindings=self._key_bindings(),
            refresh_interval=1.0,  # the "reconnecting in N s" countdown
            enable_history_search=False,  # Up/Down walk the history; Ctrl-R searches it
            # The server's echo shows what was sent (with time and nick), as in IRC clients;
            # leaving the raw input line too would print every message twice.
            erase_when_done=True,
        )
        self.prompt_session.default_buffer.on_text_changed += self._disarm_ctrl_c

    @staticmethod
    def _file_history() -> History:
        try:
            return FileHistory(str(paths.private_file(history_path())))
        except OSError as exc:
            log.warning("input history is not kept: %s", exc)
            return InMemoryHistory()

    # ------------------------------------------------------------------ event hand-off

    def _from_reader(self, frame: Frame) -> None:
        """Called on the reader thread: pass the frame to the loop, never touch the UI here."""
        with self._handoff_lock:
            if self._loop is None or self._queue is None:
                self._early.append(frame)
                return
            loop, queue = self._loop, self._queue
        with contextlib.suppress(RuntimeError):  # the loop has closed: we are leaving
            loop.call_soon_threadsafe(queue.put_nowait, frame)

    async def _consume(self, queue: asyncio.Queue[Frame]) -> None:
        while True:
            frame = await queue.get()
            try:
                self.handle_event(frame)
            except Exception as exc:  # a bug showing one event costs one line, not the UI
                log.debug("could not show %r", frame, exc_info=True)
                self.say(f"!!! could not show a {frame.get('type')!r} event from the server "
                         f"({type(exc).__name__})", style="class:error")

    def view(self) -> View:
        return View(me=self.session.nick, current_room=self.session.current_room,
                    ignored=self.settings.ignored_keys())

    def handle_event(self, frame: Frame) -> None:
        """Show one event (on the loop's thread)."""
        hint = self.accounts.on_frame(frame)  # a login to keep for reconnects; new commands
        if frame.get("type") == "status" and frame.get("transient"):
            self._invalidate()  # the toolbar shows the countdown; no line for each attempt
            return
        if frame.get("type") == "help":
            self._show_help()
            return
        rendered = render_event(frame, self.view())
        if rendered is None:
            self._invalidate()
            return
        self._print_rendered(rendered)
        if hint:
            self.say(hint)
        if should_ring(self.settings.bell, rendered):
            self._bell()
        self._keep_pin_notes_visible(frame, rendered)

    def _keep_pin_notes_visible(self, frame: Frame, rendered: Rendered) -> None:
        """A pin notice is printed at once and, when history lines followed it, again after
        the history (a room's history can be a screenful)."""
        if frame.get("type") == "status" and frame.get("level") == "security":
            self._pin_notes.append(frame)
            self._history_after_note = 0
        elif self._pin_notes and "history" in rendered.kinds:
            self._history_after_note += 1
        elif self._pin_notes and frame.get("type") == "history_end":
            notes, self._pin_notes = self._pin_notes, []
            if self._history_after_note:
                for note in notes:
                    again = render_event(note, self.view())
                    if again is not None:
                        self._print_rendered(again)

    def security_notes(self) -> list[str]:
        """Pin notices not shown yet (the UI has not started): what to print when the first
        connection fails, so a pin never happens unseen."""
        with self._handoff_lock:
            return [str(frame.get("text")) for frame in self._early
                    if frame.get("type") == "status" and frame.get("level") == "security"]

    # ------------------------------------------------------------------ output

    def _print_rendered(self, rendered: Rendered) -> None:
        self.transcript.append(rendered.plain)
        # wrapped here, continuation lines indented: padding cannot fake a new message line
        print_formatted_text(wrap_fragments(rendered.fragments, self._columns()), style=STYLE)

    def say(self, *lines: str, style: str = "class:status") -> None:
        """Print local text (command results, hints) above the input line."""
        fragments = render_lines(lines, style)
        self._print_rendered(Rendered(fragments))

    def _bell(self) -> None:
        output = get_app_session().output
        output.bell()
        output.flush()

    def _invalidate(self) -> None:
        app = self.prompt_session.app
        if app.is_running:
            app.invalidate()

    def _prompt_message(self) -> FormattedText:
        room = self.session.current_room
        return FormattedText([("class:prompt.room", f"{room or '(no room)'}"), ("", "> ")])

    def toolbar(self) -> FormattedText:
        """Server name and address, current room and its people, connection state."""
        session = self.session
        room = session.current_room
        known = session.rooms.get(name_key(room)) if room else None
        return render_toolbar(ToolbarFacts(
            server=session.server_name, address=session.address, tls=session.tls, room=room,
            members=session.members(room) if room else [], state=session.state,
            retry_at=session.retry_at, queued=session.queued(),
            topic=known.topic if known else None, width=self._columns(),
            count=session.member_count(room) if room else None))

    def _columns(self) -> int | None:
        try:
            return self.prompt_session.app.output.get_size().columns
        except Exception:  # no terminal size to be had (a test's dummy output): no limit
            return None

    # ------------------------------------------------------------------ keys

    def _key_bindings(self) -> KeyBindings:
        bindings = KeyBindings()

        @bindings.add("c-c")
        def _ctrl_c(event: KeyPressEvent) -> None:
            """Like a shell: clear the line; on an empty line, twice in a row to leave."""
            buffer = event.current_buffer
            if buffer.text:
                buffer.reset()
                self._ctrl_c_armed = False
            elif self._ctrl_c_armed:
                # Not `event.is_repeat`: a terminal's answer to the cursor-position request
                # that drawing the hint sends is a key press too, so in tmux (and any real
                # terminal) the second Ctrl-C was never a "repeat". Typing disarms instead.
                event.app.exit(exception=EOFError())
            else:
                self._ctrl_c_armed = True
                self.say("press Ctrl-C again to leave (or type /quit)")

        @bindings.add("tab")
        def _tab(event: KeyPressEvent) -> None:
            """Complete now, even when a completion started by typing is still running.

            prompt_toolkit drops a completion request while another one runs, so `/wh` + Tab
            typed quickly would otherwise do nothing; our completer is cheap, so ask it here.
            """
            buffer = event.current_buffer
            if buffer.complete_state:
                buffer.complete_next()
                return
            completions = list(self.completer.get_completions(
                buffer.document, CompleteEvent(completion_requested=True)))
            if len(completions) == 1:
                buffer.apply_completion(completions[0])
                return
            common = get_common_complete_suffix(buffer.document, completions)
            if common:
                buffer.insert_text(common)
            elif completions:
                buffer.start_completion(insert_common_part=False)

        return bindings

    def _disarm_ctrl_c(self, _buffer: object) -> None:
        self._ctrl_c_armed = False

    # ------------------------------------------------------------------ input lines

    def handle_line(self, line: str) -> bool:
        """Act on one submitted line; False when the user leaves."""
        self._ctrl_c_armed = False
        parsed = classify(line)
        try:
            if parsed.kind == "message":
                self._report(self.session.send_text(parsed.text), parsed.text)
            elif parsed.kind == "command":
                if marker := history_marker(parsed, self.session.current_room):
                    self.say(marker, style="class:notice")
                self._report(self.session.send_command(parsed.text), parsed.text)
            elif parsed.kind == "client":
                return self._client_command(parsed.name, parsed.arg)
        except Refused as exc:
            self.say(f"!!! {exc}", style="class:error")
        return True

    def _report(self, result: str, text: str) -> None:
        if result == "queued":
            self.say(f"not connected: will send after reconnecting: {text}")

    def _client_command(self, name: str, arg: str) -> bool:
        if name in LEAVE_COMMANDS:
            self._leaving = True
            self.session.quit(arg or None)
            return False
        if name == "help":
            self._show_help()
        elif name == "clear":
            self.transcript.clear()
            clear_screen()
        elif name == "reconnect":
            self.say({"reconnecting": f"reconnecting to {self.session.address}…",
                      "retrying": "trying again now…",
                      "connected": "already connected"}[self.session.reconnect_now()])
        elif name == "bell":
            self._bell_command(arg)
        elif name in (REMEMBER, FORGET):
            self.accounts.client_command(name)
        elif name == "ignore":
            self._ignore_command(arg)
        elif name == "unignore":
            if not arg:
                self.say("!!! usage: /unignore NICK", style="class:error")
            elif self.settings.unignore(arg):
                self._save_settings()
                self.say(f"showing {arg} again")
            else:
                self.say(f"{arg} was not ignored")
        return True

    def _show_help(self) -> None:
        commands = sorted(merged_commands(self.session.commands), key=lambda spec: spec.name)
        width = max(len(spec.usage) for spec in commands)
        lines = ["commands:"] + [f"  {spec.usage:<{width}}  {spec.help}" for spec in commands]
        lines += [
            "keys: Tab completes commands, nicks and rooms; Up/Down history; Ctrl-R searches it;",
            "      Ctrl-C clears the line (twice on an empty line leaves); Ctrl-D leaves;",
            "      //text sends text starting with /",
        ]
        self.say(*lines, style="class:notice")

    def _bell_command(self, arg: str) -> None:
        if not arg:
            self.say(f"bell: {self.settings.bell} (choose from {', '.join(BELL_MODES)})")
            return
        mode = arg.lower()
        if mode not in BELL_MODES:
            self.say(f"!!! usage: /bell {'|'.join(BELL_MODES)}", style="class:error")
            return
        self.settings.bell = mode
        self._save_settings()
        self.say(f"bell: {mode}")

    def _ignore_command(self, arg: str) -> None:
        if not arg:
            ignored = ", ".join(self.settings.ignored) or "nobody"
            self.say(f"ignoring: {ignored}")
            return
        try:
            nick = normalize_nick(arg)
        except FrameError as exc:
            self.say(f"!!! {exc.message}", style="class:error")
            return
        if name_key(nick) == name_key(self.session.nick):
            self.say("!!! you cannot ignore yourself", style="class:error")
            return
        if name_key(nick) not in {name_key(known) for known in self.session.nicks()}:
            self.say(f"!!! nobody called {nick} is here to ignore (/who lists who is)",
                     style="class:error")
            return
        if self.settings.ignore(nick):
            self._save_settings()
            self.say(f"ignoring {nick} (here only; /unignore {nick} to undo)")
        else:
            self.say(f"already ignoring {nick}")

    def _save_settings(self) -> None:
        try:
            self.settings.save()
        except OSError as exc:
            self.say(f"!!! settings not saved: {exc}", style="class:error")

    # ------------------------------------------------------------------ main loop

    async def run_async(self, *, use_patch_stdout: bool = True) -> int:
        """Prompt for lines until the user leaves; always ends the session. Returns 0."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Frame] = asyncio.Queue()
        with self._handoff_lock:
            early, self._early = self._early, []
            self._loop, self._queue = loop, queue
        for frame in early:
            queue.put_nowait(frame)
        consumer = asyncio.create_task(self._consume(queue))
        try:
            with patch_stdout() if use_patch_stdout else contextlib.nullcontext():
                while not self._leaving:  # one turn per line the user submits
                    text = await self._prompt_once()
                    if text is not None and self.accounts.wants_password(text):
                        await self.accounts.run(text)  # asks for the password, hidden
                        continue
                    if text is None or not self.handle_line(text):
                        break
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
            with self._handoff_lock:
                self._loop = self._queue = None
            if not self._leaving:
                self.session.quit()
        return 0

    async def _prompt_once(self) -> str | None:
        try:
            return await self.prompt_session.prompt_async()
        except EOFError:
            return None
        except KeyboardInterrupt:  # only if a binding lets one through; treat as leaving
            return None

    @staticmethod
    async def _ask_hidden(message: str) -> str | None:
        """A password, typed without echo and kept out of the input history."""
        try:
            return await PromptSession(message, is_password=True,
                                       history=InMemoryHistory()).prompt_async()
        except (EOFError, KeyboardInterrupt):
            return None

    def run(self) -> int:
        return asyncio.run(self.run_async())
