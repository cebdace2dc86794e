"""Formatting of events for the terminal, and the client's remembered settings."""

from __future__ import annotations

import json
import time

import pytest
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.utils import get_cwidth

from chatkit.client.render import (
    NICK_COLOURS,
    Rendered,
    ToolbarFacts,
    View,
    mentions,
    nick_colour,
    render_event,
    render_toolbar,
    should_ring,
    wrap_fragments,
)
from chatkit.client.settings import Settings, settings_path
from chatkit.protocol import FrameError, check_server_frame

TS = 1_700_000_000.0
ME = View(me="alice", current_room="lobby")


def msg(text: str, nick: str = "bob", room: str = "lobby", **extra) -> dict:
    return {"type": "message", "room": room, "nick": nick, "text": text, "action": False,
            "id": 7, "ts": TS, **extra}


def styles(rendered: Rendered) -> list[str]:
    return [style for style, *_ in rendered.fragments]


def test_message_line_has_timestamp_nick_and_text():
    rendered = render_event(msg("hello"), ME)
    assert rendered.plain == time.strftime("%H:%M", time.localtime(TS)) + " <bob> hello"
    assert any(f"fg:{nick_colour('bob')}" in style for style in styles(rendered))


def test_nick_colour_is_stable_and_case_insensitive():
    assert nick_colour("Bob") == nick_colour("bob") == nick_colour("BOB")
    assert nick_colour("bob") in NICK_COLOURS
    assert len({nick_colour(f"user{i}") for i in range(50)}) > 3


def test_escape_sequences_from_peers_are_rendered_harmless():
    evil = "\x1b[2J\x1b]0;pwned\x07red\u202etxt\x9b31m"
    rendered = render_event(msg(evil, nick="b\x1bob", room="lob\x1bby"), ME)
    for _style, text, *_ in rendered.fragments:
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
        assert "\x9b" not in text
    assert "[2J" not in rendered.plain and "pwned" not in rendered.plain  # whole sequences go
    assert "redtxt" in rendered.plain


def test_newlines_from_peers_cannot_fake_lines():
    rendered = render_event(msg("one\n12:00 <carol> fake"), ME)
    assert "\n" not in rendered.plain


def test_room_tag_only_for_other_rooms():
    assert "[lobby]" not in render_event(msg("x"), ME).plain
    assert "[dev] <bob> x" in render_event(msg("x", room="dev"), ME).plain


def test_mention_is_highlighted_and_flagged():
    rendered = render_event(msg("hey Alice, look"), ME)
    assert rendered.mention
    assert "class:mention" in styles(rendered)
    assert not render_event(msg("malice aforethought"), ME).mention


def test_own_message_is_not_a_mention():
    rendered = render_event(msg("I am alice", nick="alice"), ME)
    assert rendered.own and not rendered.mention
    assert "class:own" in styles(rendered)


def test_mentions_word_boundaries():
    assert mentions("alice: hi", "alice")
    assert mentions("hi @alice!", "alice")
    assert not mentions("alicex", "alice")
    assert not mentions("anything", "")


def test_action_private_notice_error_have_distinct_styles():
    action = render_event(msg("waves", action=True), ME)
    assert action.plain.endswith("* bob waves")
    assert any("class:action" in style for style in styles(action))

    private = render_event({"type": "private", "from": "bob", "to": "alice", "text": "psst",
                            "ts": TS}, ME)
    assert private.plain.endswith("[pm] <bob> psst") and private.private
    assert "class:pm" in styles(private)

    sent = render_event({"type": "private", "from": "alice", "to": "bob", "text": "yo",
                         "ts": TS}, ME)
    assert sent.plain.endswith("[pm -> bob] yo") and not sent.private

    notice = render_event({"type": "join", "room": "lobby", "nick": "bob", "ts": TS}, ME)
    assert notice.plain.endswith("*** bob joined lobby")
    assert "class:notice" in styles(notice)

    error = render_event({"type": "error", "code": "no_such_nick", "message": "no such nick",
                          "ts": TS}, ME)
    assert error.plain.endswith("!!! no such nick")
    assert "class:error" in styles(error)

    status = render_event({"type": "status", "level": "info", "text": "reconnected"}, ME)
    assert status.plain.endswith("-!- reconnected")

    assert len({"class:action", "class:pm", "class:notice", "class:error", "class:status"}) == 5


def test_multi_line_notices_are_indented():
    rendered = render_event({"type": "rooms", "ts": TS, "rooms": [
        {"name": "lobby", "members": 2, "topic": None},
        {"name": "dev", "members": 1, "topic": "ship it"}]}, ME)
    lines = rendered.plain.split("\n")
    assert len(lines) == 3
    assert lines[2].strip() == "***   dev (1) - ship it"


def test_ignored_nicks_are_hidden():
    view = View(me="alice", current_room="lobby", ignored=frozenset({"bob"}))
    assert render_event(msg("spam", nick="BOB"), view) is None
    assert render_event({"type": "private", "from": "bob", "to": "alice", "text": "x"},
                        view) is None
    assert render_event({"type": "join", "room": "lobby", "nick": "bob"}, view) is None
    assert render_event(msg("fine", nick="carol"), view) is not None


def test_unshown_and_malformed_frames():
    assert render_event({"type": "pong", "ts": TS}, ME) is None
    # A frame missing fields never reaches the renderer: it is dropped on arrival.
    with pytest.raises(FrameError):
        check_server_frame({"type": "join"})


def test_bell_modes():
    mention = render_event(msg("alice!"), ME)
    plain = render_event(msg("hello"), ME)
    private = render_event({"type": "private", "from": "bob", "to": "alice", "text": "x"}, ME)
    own = render_event(msg("alice here", nick="alice"), ME)
    notice = render_event({"type": "join", "room": "lobby", "nick": "bob"}, ME)
    table = {
        "off": (False, False, False, False, False),
        "mention": (True, False, True, False, False),
        "pm": (False, False, True, False, False),
        "all": (True, True, True, False, False),
    }
    for mode, expected in table.items():
        got = tuple(should_ring(mode, r) for r in (mention, plain, private, own, notice))
        assert got == expected, mode


def test_settings_round_trip_in_chatkit_home(chatkit_home):
    settings = Settings.load()
    assert settings.bell == "mention" and settings.ignored == []
    settings.bell = "pm"
    assert settings.ignore("Bob")
    assert not settings.ignore("bob")  # case-insensitive
    settings.save()
    assert str(settings_path()).startswith(chatkit_home)
    again = Settings.load()
    assert again.bell == "pm" and again.ignored == ["Bob"]
    assert again.unignore("BOB") and not again.unignore("bob")


def test_damaged_settings_file_gives_defaults(chatkit_home):
    path = settings_path()
    path.write_text("{not json")
    assert Settings.load().bell == "mention"
    path.write_text(json.dumps({"bell": "loud", "ignored": ["ok", 3]}))
    loaded = Settings.load()
    assert loaded.bell == "mention" and loaded.ignored == ["ok"]


def test_replayed_history_is_dimmed_and_silent():
    rendered = render_event(msg("alice: earlier", history=True), ME)
    assert "class:history" in styles(rendered)
    assert not rendered.mention
    assert not should_ring("all", rendered)


def test_replayed_topic_renders_like_the_live_line_with_its_date():
    live = {"type": "topic", "room": "lobby", "text": "ship it", "nick": "bob", "id": 9,
            "ts": TS}
    replayed = render_event({**live, "history": True}, ME)
    date = time.strftime("%m-%d %H:%M", time.localtime(TS))
    assert replayed.plain == f"{date} *** bob set the topic of lobby: ship it"
    assert render_event(live, ME).plain == (time.strftime("%H:%M", time.localtime(TS))
                                            + " *** bob set the topic of lobby: ship it")
    assert "class:notice class:history" in styles(replayed)
    assert not should_ring("all", replayed)


def test_replayed_private_message_has_its_date_and_rings_nothing():
    frame = {"type": "private", "from": "bob", "to": "alice", "text": "psst", "id": 9,
             "ts": TS, "history": True}
    rendered = render_event(frame, ME)
    assert rendered.plain.startswith(time.strftime("%m-%d %H:%M", time.localtime(TS)))
    assert not should_ring("pm", rendered)


def test_history_with_a_bad_timestamp_still_renders():
    frame = {**msg("old news"), "history": True, "ts": "yesterday"}
    rendered = render_event(frame, ME)
    assert rendered is not None and "old news" in rendered.plain


def test_toolbar_shows_server_room_people_and_state():
    facts = ToolbarFacts(server="office", address="127.0.0.1:12345", tls="TLS", room="lobby",
                         members=["alice", "bob"], state="connected", retry_at=None, queued=0)
    text = "".join(fragment[1] for fragment in render_toolbar(facts))
    assert text == " connected | lobby (2) | here: alice, bob | office 127.0.0.1:12345 [TLS] "
    away = ToolbarFacts(server="", address="h:1", tls=None, room=None, members=[],
                        state="reconnecting", retry_at=time.monotonic() + 3, queued=2)
    text = "".join(fragment[1] for fragment in render_toolbar(away))
    assert text.startswith(" reconnecting in ")
    assert text.endswith(" s (2 queued) | no room | ? h:1 ")


def toolbar_text(**changes) -> str:
    facts = ToolbarFacts(server="the-office-server", address="192.168.100.200:12345",
                         tls="TLS (unverified)", room="lobby",
                         members=["alice", "bob", "carol"], state="connected", retry_at=None,
                         queued=0, topic="release on Friday")
    for key, value in changes.items():
        setattr(facts, key, value)
    return "".join(fragment[1] for fragment in render_toolbar(facts))


def test_toolbar_keeps_the_state_on_a_narrow_terminal():
    text = toolbar_text(width=40)
    assert len(text) <= 40
    assert text.startswith(" connected | lobby (3) | topic: ")
    assert text.rstrip().endswith("…")
    reconnecting = toolbar_text(width=34, state="reconnecting",
                                retry_at=time.monotonic() + 5, queued=3)
    assert reconnecting.startswith(" reconnecting in ") and "(3 queued)" in reconnecting
    assert len(reconnecting) <= 34
    assert len(toolbar_text(width=5)) <= 5


def test_toolbar_shows_the_topic():
    assert "| topic: release on Friday |" in toolbar_text()
    assert "topic" not in toolbar_text(topic=None)


def test_toolbar_counts_a_crowd_by_the_servers_count_not_the_names_it_knows():
    text = toolbar_text(count=10234)
    assert "| lobby (10,234) |" in text and "| here: alice, bob, carol |" in text


def test_toolbar_hides_the_old_member_list_while_not_connected():
    for state in ("reconnecting", "connecting", "failed"):
        text = toolbar_text(state=state, retry_at=None)
        assert "alice" not in text and "(3)" not in text, text
        assert "lobby" in text and "release on Friday" in text


# ------------------------------------------------ issue 13: wrapping cannot fake a message line


def test_runs_of_whitespace_collapse_on_display():
    frame = {"type": "message", "room": "lobby", "nick": "mallory", "id": 1, "ts": 1e9,
             "text": "hi" + " " * 40 + "\u2028\u3000 01:27 <alice> hello"}
    plain = render_event(frame, View(me="bob", current_room="lobby")).plain
    assert plain.endswith("<mallory> hi 01:27 <alice> hello")


def test_wrapped_lines_are_indented_under_the_timestamp():
    frame = {"type": "message", "room": "lobby", "nick": "mallory", "id": 1, "ts": 1e9,
             "text": " ".join(["word"] * 20)}
    rendered = render_event(frame, View(me="bob", current_room="lobby"))
    rows = "".join(text for _style, text in wrap_fragments(rendered.fragments, 30)).split("\n")
    assert len(rows) > 2 and all(len(row) <= 30 for row in rows)
    assert all(row.startswith("      word") for row in rows[1:])  # 6 columns: "HH:MM "
    assert " ".join(" ".join(rows).split()).endswith(" ".join(["word"] * 20))


def test_wrapping_counts_wide_characters_and_breaks_long_words():
    fragments = FormattedText([("class:timestamp", "01:00 "), ("", "字" * 30 + "x" * 50)])
    rows = "".join(text for _style, text in wrap_fragments(fragments, 20)).split("\n")
    assert all(get_cwidth(row) <= 20 for row in rows)
    assert all(row.startswith(" ") for row in rows[1:])


def test_no_terminal_width_leaves_lines_as_they_are():
    fragments = FormattedText([("", "01:00 "), ("", "x" * 500)])
    assert wrap_fragments(fragments, None) == fragments
