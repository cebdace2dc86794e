"""What the server's log says about clients that refuse its certificate (issue 12: it said
nothing, so an operator who changed the certificate could not tell why people left)."""

from __future__ import annotations

import logging
import select
import socket
import ssl

import pytest

from chatkit.client.connection import Connection
from chatkit.tls import KnownServers, TrustError

from helpers import ServeProcess, free_udp_port, wait_for


def test_a_client_whose_check_fails_during_the_handshake_is_logged(server, caplog):
    # An ordinary TLS client that verifies certificates (openssl s_client, a browser): it
    # aborts the handshake with an alert, which the server now names.
    caplog.set_level(logging.INFO, logger="chatkit")
    strict = ssl.create_default_context()  # the server's self-signed certificate fails it
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        with pytest.raises(ssl.SSLError):
            strict.wrap_socket(raw, server_hostname="localhost")
    wait_for(lambda: any("rejected this server's certificate" in r.getMessage()
                         for r in caplog.records), message="the rejection logged")


def test_a_chatkit_client_with_another_pin_is_logged(server, caplog, tmp_path):
    # A chatkit client checks its pin after the handshake and leaves without a word.
    caplog.set_level(logging.INFO, logger="chatkit")
    known = KnownServers(tmp_path / "known.json")
    known.pin(f"127.0.0.1:{server.port}", "SHA256:" + "A" * 43)
    with pytest.raises(TrustError):
        Connection.open("127.0.0.1", server.port, "alice", known_servers=known)
    wait_for(lambda: any("closed the connection right after the TLS handshake"
                         in r.getMessage() for r in caplog.records),
             message="the silent leave logged")


def test_a_second_server_with_a_taken_name_is_warned(tmp_path):
    # Two servers on one host both took the host name, silently. The second now warns that
    # the name is taken (its discovery probe finds the first), and says how to fix it.
    discovery_port = str(free_udp_port())
    args = ["--discovery-port", discovery_port, "--no-history", "--no-tls"]
    first = ServeProcess.start(args, env_home=str(tmp_path / "one"))
    second = ServeProcess.start(args, env_home=str(tmp_path / "two"))
    try:
        stderr = second.proc.stderr
        assert stderr is not None
        ready, _, _ = select.select([stderr], [], [], 10)  # the check takes about a second
        line = stderr.readline() if ready else ""
        assert "another server on the network is also called 'testsrv'" in line, line
        assert f"127.0.0.1:{first.port}" in line and "--name" in line
    finally:
        second.stop()
        first.stop()
