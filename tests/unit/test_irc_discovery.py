"""Discovery advertises the IRC door's ports (an additive field), and `chatkit discover` shows
them in a column of its own only when a server has them."""

from __future__ import annotations

import pytest

from chatkit.cli.discover_output import format_table
from chatkit.discovery import ServerFound, parse_server_info
from chatkit.discovery.wire import DatagramError

BODY = {"type": "reply", "name": "office", "instance": "abc123", "port": 12345,
        "addresses": ["192.168.1.20"], "version": 1, "tls": True, "fingerprint": None,
        "password": False, "users": 3, "rooms": 2, "interval": 30}


def test_irc_ports_are_read_when_there_and_none_when_not() -> None:
    info = parse_server_info({**BODY, "irc_port": 6667, "irc_tls_port": 6697})
    assert (info["irc_port"], info["irc_tls_port"]) == (6667, 6697)
    older = parse_server_info(BODY)
    assert (older["irc_port"], older["irc_tls_port"]) == (None, None)


@pytest.mark.parametrize("bad", [0, 70000, "6667", True, 66.7])
def test_a_bad_irc_port_makes_the_datagram_invalid(bad: object) -> None:
    with pytest.raises(DatagramError):
        parse_server_info({**BODY, "irc_port": bad})


def test_the_table_has_an_irc_column_only_when_a_server_speaks_irc() -> None:
    plain = ServerFound.heard(parse_server_info(BODY), "192.168.1.20", 0.001)
    assert "IRC" not in format_table([plain])
    irc = ServerFound.heard(parse_server_info({**BODY, "instance": "def456", "irc_port": 6667,
                                               "irc_tls_port": 6697}), "192.168.1.21", 0.002)
    table = format_table([plain, irc]).splitlines()
    assert table[0].rstrip().endswith("IRC")
    assert table[1].rstrip().endswith("-")
    assert table[2].rstrip().endswith("6667, 6697 (TLS)")
    assert irc.to_dict()["irc_port"] == 6667
