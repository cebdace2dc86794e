"""HOST:PORT parsing (chatkit/net/addresses.py): what a user types, rejected locally when it
cannot be an address, never handed to the resolver."""

from __future__ import annotations

import pytest

from chatkit.net.addresses import address_group, format_address, parse_address


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1", ("127.0.0.1", 12345)),
    ("127.0.0.1:80", ("127.0.0.1", 80)),
    ("host.lan", ("host.lan", 12345)),
    ("::1", ("::1", 12345)),
    ("fe80::1%eth0", ("fe80::1%eth0", 12345)),
    ("[::1]", ("::1", 12345)),
    ("[::1]:5", ("::1", 5)),
])
def test_good_addresses(text, expected):
    assert parse_address(text, 12345) == expected


@pytest.mark.parametrize("text", [
    "127.0.0.1:39371:1",  # the example: was sent to the resolver as a host
    "host:1:2", "127.0.0.1:abc", "host:", "host:0", "host:70000", ":80", "[::1]x",
    "[::1]:", "[1.2.3.4]:5", "[::1", "a:b:c",
])
def test_malformed_addresses_are_rejected_locally(text):
    with pytest.raises(ValueError) as caught:
        parse_address(text, 12345)
    assert text in str(caught.value) and "\n" not in str(caught.value)


def test_format_round_trips():
    for host, port in (("127.0.0.1", 1), ("::1", 2)):
        assert parse_address(format_address(host, port), 9) == (host, port)


@pytest.mark.parametrize("host, group", [
    ("192.168.1.7", "192.168.1.7"),
    ("2001:db8:1:2:a::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
    ("fe80::1%eth0", "fe80::/64"),
    ("::ffff:10.0.0.5", "10.0.0.5"),
    ("::1", "::/64"),
    ("not-an-ip", "not-an-ip"),
])
def test_address_groups_count_an_ipv6_64_as_one(host, group):
    assert address_group(host) == group


def test_addresses_of_one_64_share_a_group_and_others_do_not():
    groups = {address_group(f"2001:db8:0:7::{i:x}") for i in range(1, 41)}
    assert groups == {"2001:db8:0:7::/64"}
    assert address_group("2001:db8:0:8::1") not in groups
