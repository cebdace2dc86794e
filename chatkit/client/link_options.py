"""What a `Link` (chatkit/client/link.py) is given: where and how to connect (`LinkOptions`),
what it asks of its owner (`LinkHooks`), and how long it waits between reconnecting attempts
(`backoff_delay`)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from chatkit.client.connection import Connection
from chatkit.protocol import Frame


def backoff_delay(attempt: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Seconds to wait before reconnecting attempt `attempt` (1, 2, ...): a ceiling doubling
    from `initial` up to `maximum`, with "equal jitter" (half fixed, half random)."""
    ceiling: float = min(maximum, initial * 2.0 ** min(attempt - 1, 30))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass(frozen=True)
class LinkOptions:
    """Where and how to connect, and how hard to try again."""

    host: str
    port: int
    tls: bool = True
    insecure: bool = False
    password: str | None = None
    expected_fingerprint: str | None = None
    connect_timeout: float = 5.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    max_attempts: int = 2000
    queue_limit: int = 1000
    history: int | None = None  # stored messages the first room's join asks for
    #: (account, password) to log in with: sent in the hello when the nick is the account,
    #: so a reconnect takes a registered nickname back before anyone else can
    account: tuple[str, str] | None = None


@dataclass
class LinkHooks:
    """What the link asks of its owner. `welcomed`, `frame` and `rejoin_frames` are called
    with the link's lock held (so the owner's model changes atomically with the link's state);
    `emit` is called without it, from the reader thread or the caller's."""

    nick: Callable[[], str]  # the nick to (re)connect as
    welcomed: Callable[[Connection], None]
    frame: Callable[[Frame, bool], None]  # every server frame, and whether it was quiet
    rejoin_frames: Callable[[], list[Frame]]  # one join per room we are in
    emit: Callable[[Frame], None]  # events and local status for the UI
