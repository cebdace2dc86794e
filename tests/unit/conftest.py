"""Unit tests use no sockets at all: one that opens any socket fails (integration tests live
in tests/integration/)."""

from __future__ import annotations

import socket

import pytest


class _NoSockets(socket.socket):
    def __init__(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("a unit test opened a socket: move it to tests/integration/")


@pytest.fixture(autouse=True)
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "socket", _NoSockets)
