"""The prompt_toolkit application, driven through a pipe against a real server."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from chatkit.client.app import ChatApp
from chatkit.client.session import ChatSession
from chatkit.client.settings import Settings

from helpers import JsonClient, wait_for

ENTER = "\r"
CTRL_C = "\x03"
CTRL_D = "\x04"
UP = "\x1b[A"
CPR_ANSWER = "\x1b[1;1R"  # what a terminal answers to prompt_toolkit's "\x1b[6n"


def wait_for_quietly(predicate, timeout: float = 0.3) -> bool:
    try:
        return bool(wait_for(predicate, timeout=timeout))
    except AssertionError:
        return False


class AppRunner:
    """Runs ChatApp on its own thread with keys from a pipe and output thrown away."""

    def __init__(self, port: int, nick: str = "alice", **session_options) -> None:
        self.port = port
        self.nick = nick
        self.session_options = {"backoff_initial": 0.05, "backoff_max": 0.2, **session_options}
        self.app: ChatApp | None = None
        self.result: int | None = None
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._pipe_cm = create_pipe_input()
        self.pipe = self._pipe_cm.__enter__()
        self.thread = threading.Thread(target=self._body, name="chatkit-test-app", daemon=True)
        self.thread.start()
        assert self._ready.wait(5), "app did not start"
        if self.error:
            raise self.error
        wait_for(lambda: self.app.prompt_session.app.is_running, message="prompt running")

    def _body(self) -> None:
        try:
            with create_app_session(input=self.pipe, output=DummyOutput()):
                session = ChatSession("127.0.0.1", self.port, self.nick,
                                      **self.session_options)
                self.app = ChatApp(session)
                session.connect()
                self._ready.set()
                self.result = asyncio.run(self.app.run_async(use_patch_stdout=False))
        except BaseException as exc:  # reported by the test thread
            self.error = exc
        finally:
            self._ready.set()

    def type(self, keys: str) -> None:
        self.pipe.send_text(keys)

    def seen(self, text: str) -> bool:
        return any(text in line for line in list(self.app.transcript))

    def wait_seen(self, text: str) -> None:
        wait_for(lambda: self.seen(text), message=f"{text!r} on screen; got "
                 f"{list(self.app.transcript)[-5:]}")

    def wait_exit(self) -> int | None:
        self.thread.join(10)
        assert not self.thread.is_alive(), "app did not leave"
        if self.error:
            raise self.error
        return self.result

    def close(self) -> None:
        if self.thread.is_alive():
            self.type("/quit" + ENTER)
            self.thread.join(10)
        self._pipe_cm.__exit__(None, None, None)


@pytest.fixture
def run_app(server):
    runners: list[AppRunner] = []

    def start(nick: str = "alice") -> AppRunner:
        runner = AppRunner(server.port, nick)
        runners.append(runner)
        return runner

    yield start
    for runner in runners:
        runner.close()


@pytest.fixture
def bob(server):
    client = JsonClient(server.port, "bob")
    yield client
    client.close()


def test_messages_both_ways(server, run_app, bob):
    ui = run_app()
    ui.wait_seen("welcome to test, alice")
    bob.send({"type": "msg", "room": "lobby", "text": "hi from bob"})
    ui.wait_seen("<bob> hi from bob")
    ui.type("hello bob" + ENTER)
    assert bob.expect("message", nick="alice")["text"] == "hello bob"
    ui.wait_seen("<alice> hello bob")  # our own line comes back as the server's echo


def test_tab_completes_command_and_who_answers(server, run_app, bob):
    ui = run_app()
    ui.wait_seen("you joined lobby")
    ui.type("/wh\t" + ENTER)
    ui.wait_seen("2 connected")


def test_tab_completes_nick_at_line_start(server, run_app, bob):
    ui = run_app()
    wait_for(lambda: "bob" in ui.app.session.nicks(), message="bob known")
    ui.type("bo\tready?" + ENTER)
    assert bob.expect("message", nick="alice")["text"] == "bob: ready?"


def test_toolbar_shows_server_room_people_and_state(server, run_app, bob):
    ui = run_app()
    wait_for(lambda: len(ui.app.session.members()) == 2, message="two members")
    text = "".join(fragment[1] for fragment in ui.app.toolbar())
    assert "test" in text and f"127.0.0.1:{server.port}" in text
    assert "lobby (2)" in text and "here: alice, bob" in text
    assert text.startswith(" connected")


def test_help_merges_server_and_client_commands(server, run_app):
    ui = run_app()
    ui.type("/help" + ENTER)
    ui.wait_seen("/bell [off|mention|pm|all]")
    assert ui.seen("/topic [TEXT]") and ui.seen("/ignore [NICK]") and ui.seen("Ctrl-R")


def test_ignore_hides_and_is_remembered(server, run_app, bob):
    ui = run_app()
    ui.type("/ignore bob" + ENTER)
    ui.wait_seen("ignoring bob")
    bob.send({"type": "msg", "room": "lobby", "text": "spam"})
    bob.send({"type": "msg", "room": "lobby", "text": "alice: marker"})
    ui.type("/ignore" + ENTER)
    ui.wait_seen("ignoring: bob")
    assert not ui.seen("spam") and not ui.seen("marker")
    assert Settings.load().ignored == ["bob"]
    ui.type("/unignore bob" + ENTER)
    ui.wait_seen("showing bob again")
    bob.send({"type": "msg", "room": "lobby", "text": "visible now"})
    ui.wait_seen("visible now")
    assert Settings.load().ignored == []


def test_ignore_refuses_yourself_and_nobody(server, run_app, bob):
    ui = run_app()
    wait_for(lambda: "bob" in ui.app.session.nicks(), message="bob known")
    ui.type("/ignore ALICE" + ENTER)
    ui.wait_seen("!!! you cannot ignore yourself")
    ui.type("/ignore zed" + ENTER)
    ui.wait_seen("!!! nobody called zed is here to ignore")
    assert Settings.load().ignored == []
    ui.type("/ignore Bob" + ENTER)
    ui.wait_seen("ignoring Bob")


def test_bell_setting_is_remembered(server, run_app):
    ui = run_app()
    ui.type("/bell pm" + ENTER)
    ui.wait_seen("bell: pm")
    assert Settings.load().bell == "pm"
    ui.type("/bell loud" + ENTER)
    ui.wait_seen("usage: /bell off|mention|pm|all")


def test_clear_empties_the_transcript(server, run_app):
    ui = run_app()
    ui.wait_seen("welcome")
    ui.type("/clear" + ENTER)
    wait_for(lambda: not ui.seen("welcome"), message="transcript cleared")


def test_ctrl_c_clears_the_line_and_twice_leaves(server, run_app, bob):
    ui = run_app()
    ui.type("half a thought" + CTRL_C + "fresh" + ENTER)
    assert bob.expect("message", nick="alice")["text"] == "fresh"
    ui.type(CTRL_C)
    ui.wait_seen("press Ctrl-C again to leave")
    ui.type(CTRL_C)
    assert ui.wait_exit() == 0
    bob.expect("quit", nick="alice")


def test_ctrl_c_twice_leaves_with_a_terminal_answer_in_between(server, run_app, bob):
    """A real terminal answers prompt_toolkit's cursor-position request (CPR) after the
    "press Ctrl-C again" line is drawn; that answer is a key press of its own, and must not
    disarm the second Ctrl-C (it did: tmux never let the user leave this way)."""
    ui = run_app()
    ui.wait_seen("you joined lobby")
    ui.type(CTRL_C)
    ui.wait_seen("press Ctrl-C again to leave")
    ui.type(CPR_ANSWER)
    ui.type(CTRL_C)
    assert ui.wait_exit() == 0
    bob.expect("quit", nick="alice")


def test_ctrl_c_is_disarmed_by_typing(server, run_app, bob):
    ui = run_app()
    ui.wait_seen("you joined lobby")
    ui.type(CTRL_C)
    ui.wait_seen("press Ctrl-C again to leave")
    ui.type("x" + "\x7f")  # typed, then erased: the line is empty again, but not armed
    wait_for(lambda: ui.app.prompt_session.default_buffer.text == "", message="erased")
    ui.type(CTRL_C)
    wait_for(lambda: sum("press Ctrl-C again" in line for line in ui.app.transcript) == 2,
             message="asked again")
    assert ui.thread.is_alive()


def test_ctrl_d_leaves_with_status_zero(server, run_app, bob):
    ui = run_app()
    ui.type(CTRL_D)
    assert ui.wait_exit() == 0
    bob.expect("quit", nick="alice")


def test_quit_with_reason(server, run_app, bob):
    ui = run_app()
    ui.type("/quit gone fishing" + ENTER)
    assert ui.wait_exit() == 0
    assert bob.expect("quit", nick="alice")["reason"] == "gone fishing"


def test_history_is_kept_in_the_state_dir(server, run_app, chatkit_home):
    ui = run_app()
    ui.type("remember me" + ENTER)
    ui.wait_seen("<alice> remember me")
    ui.type("/quit" + ENTER)
    ui.wait_exit()
    history = Path(chatkit_home) / "state" / "history"
    assert "remember me" in history.read_text()

    again = run_app("alice2")
    buffer = again.app.prompt_session.default_buffer

    def press_up() -> bool:
        # History loads in the background; an Up before that finds nothing, so press again.
        again.type(UP)
        return wait_for_quietly(lambda: buffer.text == "remember me")

    wait_for(press_up, message="Up recalls the previous session's line")
    again.type(ENTER)
    again.wait_seen("<alice2> remember me")
    again.type("\x12remem" + ENTER + ENTER)  # Ctrl-R search, accept, send
    wait_for(lambda: sum("<alice2> remember me" in line for line in again.app.transcript) == 2,
             message="Ctrl-R found the line")


def test_mention_and_private_message_rendering(server, run_app, bob):
    ui = run_app()
    ui.wait_seen("you joined lobby")
    bob.send({"type": "privmsg", "to": "alice", "text": "psst"})
    ui.wait_seen("[pm] <bob> psst")
    ui.type("/msg bob back at you" + ENTER)
    ui.wait_seen("[pm -> bob] back at you")
    ui.type("/me waves" + ENTER)
    ui.wait_seen("* alice waves")


def test_server_restart_heals_the_ui(server_factory):
    server = server_factory()
    port = server.port
    ui = AppRunner(port, "alice")
    try:
        ui.wait_seen("you joined lobby")
        server.stop()
        ui.wait_seen("ended the connection: server shutting down")
        # one line for one server stop: no separate notice, bye and "connection lost"
        said = [line for line in ui.app.transcript
                if "shutting down" in line or " lost: " in line]
        assert len(said) == 1, said
        toolbar = "".join(fragment[1] for fragment in ui.app.toolbar())
        assert "reconnecting" in toolbar or "connecting" in toolbar
        ui.type("typed while the server was down" + ENTER)
        ui.wait_seen("will send after reconnecting")
        server_factory(port=port)
        ui.wait_seen("reconnected to test as alice; rejoined lobby; sending 1 queued line(s)")
        ui.wait_seen("<alice> typed while the server was down")
        assert "connected" in "".join(fragment[1] for fragment in ui.app.toolbar())
    finally:
        ui.close()


def test_after_giving_up_a_line_is_refused_in_one_line(server_factory):
    server = server_factory()
    ui = AppRunner(server.port, "alice", max_attempts=1)
    try:
        ui.wait_seen("you joined lobby")
        server.stop()
        ui.wait_seen("gave up reconnecting")
        ui.type("anyone there?" + ENTER)
        ui.wait_seen("!!! not sent: gave up reconnecting to 127.0.0.1:")
        assert not ui.seen("will send after reconnecting")
        assert "gave up" in "".join(fragment[1] for fragment in ui.app.toolbar())
    finally:
        ui.close()


def test_a_paste_over_the_rate_goes_out_whole_and_in_order(server_factory):
    # Issue 12: 30 pasted lines showed lines 1-21, one warning, nothing pending in the
    # toolbar, and lines 22-30 appeared minutes later out of context. Now the client paces
    # itself to the rate the server announces: the toolbar says what is still to go, and
    # every line arrives, in order, with no warning.
    server = server_factory(rate_limit=10, rate_burst=5)
    bob = JsonClient(server.port, "bob")
    ui = AppRunner(server.port)
    try:
        ui.wait_seen("you joined lobby")
        ui.type("".join(f"paste {i}{ENTER}" for i in range(30)))
        wait_for(lambda: "sending" in "".join(f[1] for f in ui.app.toolbar()),
                 message="the toolbar showing lines still queued")
        for i in range(30):
            assert bob.expect("message", nick="alice", timeout=15)["text"] == f"paste {i}"
        wait_for(lambda: ui.app.session.queued() == 0, message="the queue drained")
        assert "queued" not in "".join(f[1] for f in ui.app.toolbar())
        assert not [line for line in ui.app.transcript if "!!!" in line]
    finally:
        ui.close()
        bob.close()
