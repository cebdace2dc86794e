"""Tab completion for the interactive client's input line.

Owns: completing `/commands` (with their usage as the menu's meta text), the first argument of
commands that take a nick, a room or a setting, and nicks in plain text (`bo<Tab>` at the start
of a line gives `bob: `, like IRC clients). Pure: it reads names through callables given to it
and never touches the network, so it is unit-tested with `Document` alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from chatkit.protocol import CommandSpec, name_key

#: Suffix added when a nick is completed as the first word of a message.
ADDRESS_SUFFIX = ": "


def _matching(names: Iterable[str], prefix: str) -> list[str]:
    """Names starting with `prefix` (case-insensitive), each once, in a stable sorted order."""
    key = name_key(prefix)
    seen: dict[str, str] = {}
    for name in names:
        if name_key(name).startswith(key):
            seen.setdefault(name_key(name), name)
    return sorted(seen.values(), key=name_key)


class ChatCompleter(Completer):
    """Completes commands, command arguments and nicks.

    `commands` returns the command table (server-advertised merged with the client's own);
    `nicks` returns the nicks worth completing in text; `arguments` maps a command name to a
    callable returning the values of its first argument (e.g. `"join"` -> known rooms).
    """

    def __init__(
        self,
        commands: Callable[[], Sequence[CommandSpec]],
        nicks: Callable[[], Iterable[str]],
        arguments: Mapping[str, Callable[[], Iterable[str]]] | None = None,
    ) -> None:
        self.commands = commands
        self.nicks = nicks
        self.arguments = dict(arguments or {})

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterator[Completion]:
        before = document.text_before_cursor
        if before.startswith("/") and not before.startswith("//"):
            name, space, rest = before[1:].partition(" ")
            if not space:
                yield from self._complete_command(name)
            elif " " not in rest.lstrip(" ") and rest == rest.lstrip(" "):
                yield from self._complete_argument(name.lower(), rest)
            return
        # Nicks in plain text only on an explicit Tab: popping a menu while someone is
        # typing a sentence would be noise.
        if not complete_event.completion_requested:
            return
        word = before.split(" ")[-1]
        if not word:
            return
        at_start = before == word
        for nick in _matching(self.nicks(), word):
            text = nick + ADDRESS_SUFFIX if at_start else nick
            yield Completion(text, start_position=-len(word), display=nick)

    def _complete_command(self, prefix: str) -> Iterator[Completion]:
        seen: set[str] = set()
        for spec in sorted(self.commands(), key=lambda spec: spec.name):
            key = spec.name.lower()
            if key in seen or not key.startswith(prefix.lower()):
                continue
            seen.add(key)
            meta = f"{spec.usage} - {spec.help}" if spec.help else spec.usage
            # A command that takes arguments gets its space, so `/jo<Tab>dev` is `/join dev`.
            takes_arguments = " " in spec.usage.strip()
            yield Completion(
                "/" + spec.name + (" " if takes_arguments else ""),
                start_position=-(len(prefix) + 1), display="/" + spec.name, display_meta=meta,
            )

    def _complete_argument(self, command: str, prefix: str) -> Iterator[Completion]:
        values = self.arguments.get(command)
        if values is None:
            return
        # The trailing space lets the user type on: `/msg bo<Tab>secret` is `/msg bob secret`.
        for value in _matching(values(), prefix):
            yield Completion(value + " ", start_position=-len(prefix), display=value)


#: commands whose first argument is a nickname (the operators' included)
NICK_ARGUMENTS = ("msg", "ignore", "op", "deop", "voice", "devoice", "kick", "ban", "mute",
                  "unmute", "unban", "invite", "kill", "serverban")
#: commands that take on or off
SWITCHES = ("moderated", "invite-only", "topic-lock")


def chat_completer(*, commands: Callable[[], Sequence[CommandSpec]],
                   nicks: Callable[[], Iterable[str]], rooms: Callable[[], Iterable[str]],
                   joined_rooms: Callable[[], Iterable[str]],
                   ignored: Callable[[], Iterable[str]],
                   bell_modes: Iterable[str]) -> ChatCompleter:
    """The completer both clients use (`chatkit join`'s prompt and `chatkit gui`'s input
    line): the same commands complete the same arguments in both."""
    modes = tuple(bell_modes)
    return ChatCompleter(commands=commands, nicks=nicks, arguments={
        **dict.fromkeys(NICK_ARGUMENTS, nicks),
        **dict.fromkeys(SWITCHES, lambda: ("on", "off")),
        "unignore": ignored, "join": rooms, "part": joined_rooms, "who": rooms,
        "bell": lambda: modes,
    })
