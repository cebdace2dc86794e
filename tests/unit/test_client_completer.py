"""The input line's Tab completion, tested with Documents alone (no terminal, no network)."""

from __future__ import annotations

from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from chatkit.client.app import merged_commands
from chatkit.client.completer import ChatCompleter
from chatkit.protocol import COMMANDS, CommandSpec

TAB = CompleteEvent(completion_requested=True)
TYPING = CompleteEvent(text_inserted=True)


def make_completer(extra: tuple[CommandSpec, ...] = ()) -> ChatCompleter:
    nicks = ["bob", "Bobby", "carol"]
    rooms = ["dev", "Design", "lobby"]
    return ChatCompleter(
        commands=lambda: merged_commands([*COMMANDS, *extra]),
        nicks=lambda: nicks,
        arguments={"msg": lambda: nicks, "join": lambda: rooms,
                   "bell": lambda: ("off", "mention", "pm", "all")},
    )


def complete(text: str, event: CompleteEvent = TAB, completer: ChatCompleter | None = None
             ) -> list:
    completer = completer or make_completer()
    return list(completer.get_completions(Document(text, len(text)), event))


def applied(text: str, completion) -> str:
    """The line after accepting `completion`, as prompt_toolkit would insert it."""
    return text[: len(text) + completion.start_position] + completion.text


def test_command_name_completes_with_usage_as_meta():
    [completion] = complete("/wh")
    assert applied("/wh", completion) == "/who "
    assert "/who [ROOM]" in completion.display_meta_text


def test_commands_complete_while_typing_too():
    assert [c.text for c in complete("/jo", TYPING)] == ["/join "]


def test_a_completed_command_that_takes_arguments_ends_with_a_space():
    [join] = complete("/jo")
    assert applied("/jo", join) == "/join "
    assert join.display_text == "/join"
    [rooms] = complete("/roo")
    assert applied("/roo", rooms) == "/rooms"  # nothing follows /rooms: no space
    assert [c.text for c in complete("/join")] == ["/join "]


def test_slash_lists_server_and_client_commands():
    names = {c.display_text for c in complete("/")}
    assert {"/join", "/msg", "/who", "/topic"} <= names  # the server's
    assert {"/clear", "/bell", "/ignore", "/unignore", "/help", "/quit"} <= names  # the client's
    assert len(names) == len([c.text for c in complete("/")])  # each once


def test_server_advertised_commands_are_completed():
    extra = (CommandSpec("kick", "/kick NICK", "Remove NICK from the room"),)
    [completion] = complete("/ki", completer=make_completer(extra))
    assert completion.text == "/kick "
    assert "/kick NICK" in completion.display_meta_text


def test_command_names_are_case_insensitive():
    assert [c.text for c in complete("/WH")] == ["/who "]


def test_nick_after_msg():
    completions = complete("/msg bo")
    assert [c.text for c in completions] == ["bob ", "Bobby "]
    # the space matters: typing on after Tab must not glue the text to the nick
    assert applied("/msg bo", completions[0]) == "/msg bob "


def test_room_after_join_case_insensitive():
    assert [c.text for c in complete("/join d")] == ["Design ", "dev "]


def test_bell_modes():
    assert [c.text for c in complete("/bell m")] == ["mention "]


def test_only_the_first_argument_is_completed():
    assert complete("/msg bob hel") == []
    assert complete("/who ") == []  # no value source given for /who in this completer


def test_nick_at_start_of_line_gets_address_suffix():
    [completion] = complete("car")
    assert applied("car", completion) == "carol: "


def test_nick_in_the_middle_of_a_line_has_no_suffix():
    [completion] = complete("hi car")
    assert applied("hi car", completion) == "hi carol"


def test_plain_text_completes_only_on_tab():
    assert complete("car", TYPING) == []


def test_nothing_for_empty_word_or_escaped_slash():
    assert complete("hello ") == []
    assert complete("//wh") == []
    assert complete("") == []
