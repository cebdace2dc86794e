"""Accounts and moderation without a network: password hashing, ban and mute matching,
durations, the command lines, and the records kept in SQLite."""

from __future__ import annotations

import time

import pytest

from chatkit.protocol import FrameError, parse_command
from chatkit.protocol.account_commands import parse_duration
from chatkit.server.hub.accounts import (
    SCRYPT_N,
    SCRYPT_P,
    SCRYPT_R,
    check_new_password,
    hash_password,
    verify_password,
)
from chatkit.server.hub.member import Member
from chatkit.server.hub.moderation import Moderation
from chatkit.store import Records


def test_hash_is_salted_scrypt_with_its_parameters() -> None:
    first, second = hash_password("open sesame"), hash_password("open sesame")
    assert first != second  # a salt each
    scheme, n, r, p, _salt, _key = first.split("$")
    assert (scheme, int(n), int(r), int(p)) == ("scrypt", SCRYPT_N, SCRYPT_R, SCRYPT_P)
    assert "open sesame" not in first
    assert verify_password("open sesame", first) and verify_password("open sesame", second)
    assert not verify_password("open sesame!", first)
    assert not verify_password("", first)


@pytest.mark.parametrize("stored", ["", "scrypt$x$y", "md5$1$2$3$4$5", "scrypt$16$8$1$!!$??"])
def test_a_damaged_hash_matches_nothing(stored: str) -> None:
    assert not verify_password("anything", stored)


def test_weak_passwords_are_refused() -> None:
    for weak in ("", "abc", "x" * 300):
        with pytest.raises(FrameError):
            check_new_password(weak)
    assert check_new_password("long enough") == "long enough"


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("10m", 600), ("2h", 7200),
                                               ("7d", 604800), ("1w", 604800), ("10M", 600)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "m", "1y", "-5m", "1.5h", "9999999m"])
def test_not_durations(text: str) -> None:
    assert parse_duration(text) is None


def test_command_lines() -> None:
    assert parse_command("/ban bob 2h spam and links", "dev") == {
        "type": "moderate", "action": "ban", "room": "dev", "target": "bob",
        "duration": 7200, "reason": "spam and links"}
    assert parse_command("/ban bob spam", "dev")["reason"] == "spam"
    assert parse_command("/mute bob", "dev") == {"type": "moderate", "action": "mute",
                                                  "room": "dev", "target": "bob",
                                                  "reason": None}
    assert parse_command("/kick bob be nice", "dev")["reason"] == "be nice"
    assert parse_command("/topic-lock off", "dev")["on"] is False
    assert parse_command("/serverban 10.0.0.5 1d", None)["room"] is None
    assert parse_command("/kill bob flooding", None) == {"type": "kill", "nick": "bob",
                                                          "reason": "flooding"}
    assert parse_command("/identify alice", None) == {"type": "identify", "account": "alice"}
    assert parse_command("/register", None) == {"type": "register"}
    for wrong in ("/register secret", "/moderated maybe", "/op", "/wall", "/deop a b"):
        with pytest.raises(FrameError):
            parse_command(wrong, "dev")


def member(peer: str, nick: str, account: str | None = None) -> Member:
    m = Member(peer)
    m.nick, m.account = nick, account
    return m


@pytest.fixture
def moderation() -> Moderation:
    return Moderation(Records.memory())


def test_bans_match_by_nick_account_or_address(moderation: Moderation) -> None:
    write = moderation.add("ban", "dev", [("nick", "bob"), ("address", "10.0.0.5")], "bob",
                           "alice", "spam", None)
    write()
    assert moderation.matching("ban", member("10.0.0.9:1", "Bob"), "DEV") is not None
    assert moderation.matching("ban", member("10.0.0.5:1", "other"), "dev") is not None
    assert moderation.matching("ban", member("10.0.0.9:1", "other"), "dev") is None
    assert moderation.matching("ban", member("10.0.0.5:1", "other"), "lobby") is None
    assert moderation.matching("ban", member("10.0.0.5:1", "other"), None) is None  # room only
    moderation.add("ban", None, [("account", "carol")], "carol", "root", None, None)
    assert moderation.matching("ban", member("10.1.1.1:1", "x", "Carol"), None) is not None
    # IPv6: one /64 is one address group
    moderation.add("mute", "dev", [("address", "2001:db8:1:2::/64")], None, "a", None, None)
    assert moderation.matching("mute", member("[2001:db8:1:2::99]:5", "v6"), "dev") is not None


def test_a_ban_ends(moderation: Moderation) -> None:
    moderation.add("ban", "dev", [("nick", "bob")], "bob", "alice", None, 60)
    bob = member("10.0.0.9:1", "bob")
    assert moderation.matching("ban", bob, "dev") is not None
    assert moderation.matching("ban", bob, "dev", now=time.time() + 61) is None
    with pytest.raises(FrameError) as info:
        moderation.may_join(bob, "dev")
    assert "for 1 more minute" in info.value.message or "seconds" in info.value.message


def test_lifting_by_name_address_or_id(moderation: Moderation) -> None:
    moderation.add("ban", "dev", [("nick", "bob"), ("address", "10.0.0.5")], "bob", "a",
                   None, None)
    lifted, write = moderation.lift("ban", "dev", "bob")  # the name lifts what it was given
    write()
    assert len(lifted) == 2 and not moderation.sanctions
    moderation.add("ban", "dev", [("address", "10.0.0.7")], "10.0.0.7", "a", None, None)
    [ban] = moderation.sanctions.values()
    assert moderation.lift("ban", "dev", f"#{ban.id}")[0] == [ban]


def test_records_keep_what_moderation_writes(moderation: Moderation) -> None:
    records = moderation.records
    records.add_account("alice", hash_password("whatever1"))
    alice = member("10.0.0.1:1", "alice", "alice")
    moderation.found("dev", alice)()
    moderation.set_role("dev", "carol", "op", True)()
    moderation.set_mode("dev", "moderated", True)()
    moderation.add("mute", "dev", [("nick", "bob")], "bob", "alice", "loud", 3600)()
    again = Moderation(records)  # as after a restart
    assert again.founder("dev") == "alice"
    assert again.is_op(member("10.0.0.3:1", "x", "Carol"), "dev")
    assert again.mode("dev", "moderated")
    assert again.matching("mute", member("10.0.0.4:1", "bob"), "dev") is not None
    # a new id never reuses one in the database
    moderation.add("ban", "dev", [("nick", "zed")], "zed", "alice", None, None)()
    assert len({s.id for s in Moderation(records).sanctions.values()}) == 2


def test_guests_and_other_rooms_are_no_operators(moderation: Moderation) -> None:
    alice = member("10.0.0.1:1", "alice", "alice")
    moderation.found("dev", alice)
    assert moderation.is_op(alice, "dev") and not moderation.is_op(alice, "ops")
    assert not moderation.is_op(member("10.0.0.1:2", "alice"), "dev")  # the nick alone
    assert moderation.found("lobby", alice) is None  # the lobby has no founder
    admin = member("10.0.0.2:1", "root", "root")
    admin.admin = True
    assert moderation.is_op(admin, "anything")
