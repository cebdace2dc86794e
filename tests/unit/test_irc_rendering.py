"""How the IRC door renders chatkit frames: events (once per capability set, shared), replies
as numerics, errors as the numerics of the command that caused them, and the crowd rule."""

from __future__ import annotations

from chatkit.protocol import irc
from chatkit.server.doors.irc.formats import batch_ref, irc_format

PLAIN = irc_format("box", set())
MODERN = irc_format("box", {"server-time", "message-tags", "batch", "echo-message"})


def lines(data: bytes) -> list[str]:
    assert data.endswith(b"\r\n") or data == b""
    return data.decode().split("\r\n")[:-1]


def message(text: str = "hello", **extra: object) -> dict[str, object]:
    return {"type": "message", "room": "lobby", "nick": "alice", "text": text,
            "action": False, "id": 42, "ts": 1_700_000_000.25, **extra}


def test_formats_are_shared_per_capability_set() -> None:
    assert irc_format("box", {"server-time"}) is irc_format("box", {"server-time", "sasl"})
    assert irc_format("box", set()) is PLAIN
    assert PLAIN is not MODERN


def test_a_message_with_and_without_tags() -> None:
    assert lines(PLAIN.encode(message())) == [":alice!alice@chatkit PRIVMSG #lobby :hello"]
    assert lines(MODERN.encode(message())) == [
        "@time=2023-11-14T22:13:20.250Z;msgid=42 :alice!alice@chatkit PRIVMSG #lobby :hello"]


def test_an_action_is_ctcp() -> None:
    assert lines(PLAIN.encode(message("waves", action=True))) == [
        ":alice!alice@chatkit PRIVMSG #lobby :\x01ACTION waves\x01"]


def test_a_long_message_is_split_within_512_bytes_with_continuation_ids() -> None:
    text = "ü" * 1500  # 3000 bytes
    out = lines(MODERN.encode(message(text)))
    assert len(out) >= 6
    for number, item in enumerate(out):
        tags, _, rest = item.partition(" ")
        assert len(rest.encode()) + 2 <= irc.LINE_LIMIT
        assert tags.endswith(f"msgid=42.{number}" if number else "msgid=42")
    assert "".join(irc.parse(item).params[1] for item in out) == text


def test_own_copy_only_with_echo_message() -> None:
    encoded = PLAIN.encode(message())
    assert PLAIN.encode_own(encoded, message(), None, "alice") is None
    assert MODERN.encode_own(MODERN.encode(message()), message(), None, "alice") == \
        MODERN.encode(message())
    part = {"type": "part", "room": "lobby", "nick": "alice", "reason": None, "id": 1, "ts": 1.0}
    assert PLAIN.encode_own(PLAIN.encode(part), part, None, "alice") == PLAIN.encode(part)


def test_events_other_than_messages() -> None:
    stamp = {"id": 1, "ts": 1.0}
    assert lines(PLAIN.encode({"type": "join", "room": "dev", "nick": "bob", **stamp})) == [
        ":bob!bob@chatkit JOIN #dev"]
    assert lines(PLAIN.encode({"type": "part", "room": "dev", "nick": "bob",
                               "reason": "bye now", **stamp})) == [
        ":bob!bob@chatkit PART #dev :bye now"]
    assert lines(PLAIN.encode({"type": "quit", "nick": "bob", "reason": None, **stamp})) == [
        ":bob!bob@chatkit QUIT :Quit"]
    assert lines(PLAIN.encode({"type": "nick", "old": "bob", "new": "rob", **stamp})) == [
        ":bob!bob@chatkit NICK rob"]
    assert lines(PLAIN.encode({"type": "topic", "room": "dev", "text": "ship it",
                               "nick": "bob", **stamp})) == [
        ":bob!bob@chatkit TOPIC #dev :ship it"]
    assert lines(PLAIN.encode({"type": "private", "from": "bob", "to": "alice",
                               "text": "psst", **stamp})) == [
        ":bob!bob@chatkit PRIVMSG alice :psst"]


def test_history_is_a_batch_with_real_times_or_times_in_the_text() -> None:
    old = message(history=True)
    assert lines(MODERN.encode_for(old, "carol")) == [
        f"@batch={batch_ref('lobby')};time=2023-11-14T22:13:20.250Z;msgid=42 "
        ":alice!alice@chatkit PRIVMSG #lobby :hello"]
    (plain,) = lines(PLAIN.encode_for(old, "carol"))
    assert plain.startswith(":alice!alice@chatkit PRIVMSG #lobby :[2023-11-1")
    end = {"type": "history_end", "room": "lobby", "count": 1, "more": False, "id": 2,
           "ts": 2.0}
    assert lines(MODERN.encode_for(end, "carol")) == [f":box BATCH -{batch_ref('lobby')}"]
    assert PLAIN.encode_for(end, "carol") == b""


def test_joined_is_join_topic_names_and_the_batch_opening() -> None:
    joined = {"type": "joined", "room": "lobby", "topic": "welcome all",
              "members": ["alice", "bob"], "id": 3, "ts": 3.0}
    assert lines(MODERN.encode_for(joined, "bob")) == [
        ":bob!bob@chatkit JOIN #lobby",
        ":box 332 bob #lobby :welcome all",
        ":box 353 bob = #lobby :alice bob",
        ":box 366 bob #lobby :End of /NAMES list.",
        f":box BATCH +{batch_ref('lobby')} chathistory #lobby",
    ]


def test_joined_pages_make_one_join_and_one_end() -> None:
    first = {"type": "joined", "room": "big", "topic": None, "members": ["a"], "page": 0,
             "more": True, "id": 3, "ts": 3.0}
    last = {**first, "members": ["b"], "page": 1, "more": False}
    out = lines(PLAIN.encode_for(first, "a")) + lines(PLAIN.encode_for(last, "a"))
    assert out == [":a!a@chatkit JOIN #big", ":box 353 a = #big :a", ":box 353 a = #big :b",
                   ":box 366 a #big :End of /NAMES list."]


def test_a_crowd_join_says_how_many_are_there() -> None:
    joined = {"type": "joined", "room": "hall", "topic": None, "members": ["me", "x"],
              "count": 5000, "partial": True, "id": 3, "ts": 3.0}
    out = lines(PLAIN.encode_for(joined, "me"))
    assert out[-1] == (":box NOTICE #hall :5000 people are in #hall; the names above are some "
                       "of them: /who #hall lists them all")


def test_presence_becomes_joins_parts_and_a_notice_for_the_rest() -> None:
    presence = {"type": "presence", "room": "hall", "count": 1203, "joined": ["ann", "ben"],
                "left": ["cy"], "joined_count": 40, "left_count": 1, "id": 9, "ts": 9.0}
    assert lines(PLAIN.encode(presence)) == [
        ":ann!ann@chatkit JOIN #hall", ":ben!ben@chatkit JOIN #hall",
        ":cy!cy@chatkit PART #hall",
        ":box NOTICE #hall :38 more joined; 1203 people are in #hall"]
    quiet = {**presence, "joined_count": 2}
    assert lines(PLAIN.encode(quiet))[-1] == ":cy!cy@chatkit PART #hall"


def test_names_lines_stay_within_512_bytes() -> None:
    members = [f"user{n:04d}_with_a_long_name" for n in range(200)]
    joined = {"type": "joined", "room": "hall", "topic": None, "members": members, "id": 3,
              "ts": 3.0}
    out = [item for item in lines(PLAIN.encode_for(joined, "me")) if " 353 " in item]
    assert all(len(item.encode()) + 2 <= irc.LINE_LIMIT for item in out)
    assert sum(len(item.split(" :", 1)[1].split()) for item in out) == 200


def error(code: str, ref: str | None) -> dict[str, object]:
    frame: dict[str, object] = {"type": "error", "code": code, "message": "m", "id": 1,
                                "ts": 1.0}
    if ref is not None:
        frame["ref"] = ref
    return frame


def test_errors_are_the_numerics_of_the_command_that_caused_them() -> None:
    def numeric(code: str, ref: str | None, me: str = "me") -> str:
        return lines(PLAIN.encode_for(error(code, ref), me))[0].split(" ")[1]

    assert numeric("nick_taken", "NICK bob", "*") == "433"
    assert numeric("bad_nick", "NICK 1x") == "432"
    assert numeric("no_such_nick", "PRIVMSG carol") == "401"
    assert numeric("no_such_room", "TOPIC #nope") == "403"
    assert numeric("bad_room", "JOIN #a!b") == "403"
    assert numeric("not_in_room", "PRIVMSG #dev") == "404"
    assert numeric("not_in_room", "PART #dev") == "442"
    assert numeric("bad_password", "NICK me", "*") == "464"
    assert numeric("too_many_rooms", "JOIN #x") == "405"
    assert numeric("not_registered", None) == "451"
    assert numeric("empty_text", "PRIVMSG #x") == "412"
    assert numeric("frame_too_long", None) == "417"
    assert lines(PLAIN.encode_for(error("store_failed", "PRIVMSG #x"), "me"))[0] == \
        ":box NOTICE me :m"
    assert lines(PLAIN.encode_for(error("flooding", None), "me"))[0] == \
        "ERROR :Closing link: m"
    assert PLAIN.encode_for(error("no_such_nick", "NOTICE carol"), "me") == b""
    assert numeric("no_such_room", "NAMES #gone") == "366"  # RFC 2812: NAMES never errs


def test_who_reply_is_names_or_who_by_its_ref() -> None:
    who = {"type": "who", "room": "dev", "users": [{"nick": "ann", "rooms": ["dev"]}],
           "id": 1, "ts": 1.0}
    assert lines(PLAIN.encode_for({**who, "ref": "NAMES #dev"}, "me")) == [
        ":box 353 me = #dev :ann", ":box 366 me #dev :End of /NAMES list."]
    assert lines(PLAIN.encode_for({**who, "ref": "WHO #dev"}, "me")) == [
        ":box 352 me #dev ann chatkit box ann H :0 ann", ":box 315 me #dev :End of /WHO list."]


def test_topic_query_list_pong_and_bye() -> None:
    assert lines(PLAIN.encode_for({"type": "topic", "room": "dev", "text": None,
                                   "nick": None, "id": 1, "ts": 1.0}, "me")) == [
        ":box 331 me #dev :No topic is set"]
    rooms = {"type": "rooms", "rooms": [{"name": "dev", "members": 2, "topic": "t"}],
             "id": 1, "ts": 1.0}
    assert lines(PLAIN.encode_for(rooms, "me")) == [
        ":box 321 me Channel :Users  Name", ":box 322 me #dev 2 :t", ":box 323 me :End of /LIST"]
    assert lines(PLAIN.encode_for({"type": "pong", "ref": "tok", "id": 1, "ts": 1.0}, "me")) \
        == [":box PONG box :tok"]
    assert lines(PLAIN.encode_for({"type": "bye", "reason": "server shutting down",
                                   "id": 1, "ts": 1.0}, "me")) == [
        "ERROR :Closing link: server shutting down"]


def test_welcome_advertises_the_rules() -> None:
    welcome = {"type": "welcome", "version": 1, "server": "my box", "nick": "me",
               "commands": [], "limits": {"max_nick": 24, "max_room": 32}, "id": 1, "ts": 1.0}
    out = lines(PLAIN.encode_for(welcome, "me"))
    assert out[0].startswith(":box 001 me :Welcome")
    tokens = " ".join(item for item in out if " 005 " in item)
    for token in ("CHANTYPES=#", "NICKLEN=24", "CHANNELLEN=33", "CASEMAPPING=rfc8265",
                  "LINELEN=512", "UTF8ONLY"):
        assert token in tokens
    assert out[-1] == ":box 376 me :End of /MOTD command."


def test_an_event_is_rendered_once_and_shared_by_every_irc_member() -> None:
    from chatkit.server.bus.fanout import fan_out
    from chatkit.server.hub.member import Member

    class Fake(Member):
        def __init__(self, nick: str, caps: set[str]) -> None:
            super().__init__("127.0.0.1:1")
            self.nick = nick
            self.format = irc_format("box", caps)

    plain = [Fake(f"p{n}", set()) for n in range(5)]
    tagged = [Fake(f"t{n}", {"server-time", "message-tags", "away-notify"}) for n in range(5)]
    out: dict = {}
    fan_out(message(), [*plain, *tagged], None, None, out)  # type: ignore[arg-type]
    plain_bytes = {id(out[m][0]) for m in plain}
    tagged_bytes = {id(out[m][0]) for m in tagged}
    assert len(plain_bytes) == 1 and len(tagged_bytes) == 1  # one object per format
    assert plain_bytes != tagged_bytes


def test_a_moderation_notice_goes_to_the_channel() -> None:
    notice = {"type": "notice", "text": "op kicked bob (spam)", "room": "dev", "action": "kick",
              "by": "op", "target": "bob", "id": 7, "ts": 7.0}
    assert lines(PLAIN.encode(notice)) == [":box NOTICE #dev :op kicked bob (spam)"]
    assert lines(PLAIN.encode_for(notice, "me")) == [":box NOTICE #dev :op kicked bob (spam)"]
    wall = {"type": "notice", "text": "restart at noon", "room": None, "action": "wall",
            "by": "admin", "target": None, "id": 8, "ts": 8.0}
    assert lines(PLAIN.encode(wall)) == [":box NOTICE * :restart at noon"]
