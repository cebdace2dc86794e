"""The discovery datagram without sockets: encoding, hostile input, server descriptions, fitting
a reply into a probe's size, nonces; and how a client picks a server from what it heard."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from chatkit import discovery as d


def server_info(name: str = "alpha", **overrides: Any) -> dict[str, Any]:
    info = {"name": name, "instance": secrets.token_hex(8), "port": 4000,
            "addresses": ["127.0.0.1"], "version": 1, "tls": False, "fingerprint": None,
            "users": 2, "rooms": 1}
    info.update(overrides)
    return info


def test_probe_is_padded_and_round_trips() -> None:
    data = d.make_probe("ab" * 16)
    assert len(data) == d.PROBE_SIZE
    assert data.startswith(b"CHATKIT-DISCOVERY 1\n")
    assert d.decode_datagram(data) == {"type": "probe", "nonce": "ab" * 16}


@pytest.mark.parametrize("data, reason", [
    (b"x" * (d.MAX_DATAGRAM + 1), "oversized"),
    (b"HELLO 1\n{}", "bad magic"),
    (b"CHATKIT-DISCOVERY 1{\"type\":\"probe\"}", "bad magic"),
    (b"CHATKIT-DISCOVERY 2\n{\"type\":\"probe\"}", "wrong version"),
    (b"CHATKIT-DISCOVERY 01\n{\"type\":\"probe\"}", "wrong version"),
    (b"CHATKIT-DISCOVERY 1\n{\"type\":", "bad json"),
    (b"CHATKIT-DISCOVERY 1\n\xff\xfe", "bad json"),
    (b"CHATKIT-DISCOVERY 1\n" + b"[" * 1000, "bad json"),
    (b"CHATKIT-DISCOVERY 1\n[1, 2]", "bad type"),
    (b"CHATKIT-DISCOVERY 1\n{\"type\":\"hello\"}", "bad type"),
    (b"", "bad magic"),
])
def test_decode_rejects_hostile_datagrams(data: bytes, reason: str) -> None:
    with pytest.raises(d.DatagramError) as info:
        d.decode_datagram(data)
    assert info.value.reason == reason


@pytest.mark.parametrize("change", [
    {"port": 0}, {"port": 70000}, {"port": "12345"}, {"port": True}, {"instance": "a b"},
    {"instance": ""}, {"name": 5}, {"addresses": ["not-an-ip"]}, {"addresses": "127.0.0.1"},
    {"addresses": ["10.0.0.1"] * 17}, {"tls": "yes"}, {"fingerprint": "\x1b[31m"},
    {"users": -1}, {"rooms": 1.5}, {"interval": 0}, {"interval": "30"}, {"password": "yes"},
    {"password": 1},
])
def test_server_info_rejects_bad_fields(change: dict[str, Any]) -> None:
    with pytest.raises(d.DatagramError):
        d.parse_server_info({**server_info(), **change})


def test_server_info_sanitizes_name() -> None:
    info = d.parse_server_info(server_info("\x1b[2Joffice\u202e" + "x" * 200))
    assert info["name"].startswith("office")  # the whole escape sequence is gone
    assert "\x1b" not in info["name"] and "\u202e" not in info["name"]
    assert len(info["name"]) == d.MAX_NAME


def test_fit_never_exceeds_the_limit() -> None:
    body = {"type": "reply", "nonce": "ab" * 16,
            **server_info("n" * 64, addresses=["fd00::1234:5678:9abc:def0"] * 16,
                          fingerprint="ab:" * 40 + "ab")}
    data = d.fit_datagram(body, 512)
    assert data is not None and len(data) <= 512
    assert d.decode_datagram(data)["fingerprint"] == body["fingerprint"]


@pytest.mark.parametrize("nonce, valid", [
    ("ab" * 8, True), ("0123456789abcdef" * 4, True), ("ab" * 7, False), ("a" * 65, False),
    ("AB" * 8, False), ("ab" * 8 + "\n", False), (["ab" * 8], False), (None, False),
])
def test_nonce_validation(nonce: object, valid: bool) -> None:
    assert d.is_valid_nonce(nonce) is valid


def test_connect_host_prefers_the_bound_address() -> None:
    assert d.connect_host("10.0.0.5", ["0.0.0.0"]) == "10.0.0.5"
    assert d.connect_host("10.0.0.5", ["10.0.0.5", "127.0.0.1"]) == "10.0.0.5"
    assert d.connect_host("127.0.0.1", ["10.0.0.5"]) == "10.0.0.5"
    assert d.connect_host("10.0.0.5", []) == "10.0.0.5"


def found(name: str, instance: str, host: str = "10.0.0.5", **kwargs: Any) -> d.ServerFound:
    fields: dict[str, Any] = dict(name=name, instance=instance, host=host, port=1,
                                  addresses=[], version=1, tls=False, fingerprint=None,
                                  users=0, rooms=1, rtt=None)
    fields.update(kwargs)
    return d.ServerFound(**fields)


def test_select_servers() -> None:
    servers = [found("Office", "a"), found("lab", "b")]
    assert [s.instance for s in d.select_servers(servers, "office")] == ["a"]
    assert [s.instance for s in d.select_servers(servers, "b")] == ["b"]
    assert d.select_servers(servers, "nope") == []


def test_merged_sightings_keep_the_lan_address_and_the_best_rtt() -> None:
    seen = found("office", "a", host="127.0.0.1", rtt=0.01, via=["127.0.0.1"])
    seen.merge(found("office", "a", host="10.0.0.5", rtt=0.002, users=4, via=["10.0.0.5"]))
    seen.merge(found("office", "a", host="127.0.0.1", rtt=None, users=5, via=["127.0.0.1"]))
    assert (seen.host, seen.rtt, seen.users, seen.via) == (
        "10.0.0.5", 0.002, 5, ["127.0.0.1", "10.0.0.5"])


def test_server_info_says_whether_a_password_is_needed() -> None:
    assert d.parse_server_info(server_info(password=True))["password"] is True
    assert d.parse_server_info(server_info(password=False))["password"] is False
    # an older server does not say: unknown, not "no"
    assert d.parse_server_info(server_info())["password"] is None
    found = d.ServerFound.heard(d.parse_server_info(server_info(password=True)), "127.0.0.1",
                                None)
    assert found.password is True and found.to_dict()["password"] is True
