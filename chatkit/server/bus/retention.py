"""Retention of a message log (`serve --retain-days`, `--max-messages`): old rows deleted a
bounded batch at a time, between the bus's batches, so a big backlog never stalls delivery."""

from __future__ import annotations

import logging
import time

from chatkit.store import MessageStore, StoreError

log = logging.getLogger("chatkit.server")


class Retention:
    def __init__(self, store: MessageStore, *, retain_days: float | None = None,
                 max_messages: int | None = None, prune_every: float = 60.0) -> None:
        self.store = store
        self.retain_days, self.max_messages = retain_days, max_messages
        self.prune_every = prune_every
        self._next_prune = time.monotonic() + prune_every

    @property
    def active(self) -> bool:
        return self.retain_days is not None or self.max_messages is not None

    def maybe_prune(self) -> None:
        """Delete one batch of old rows when a pass is due (called by the bus's thread)."""
        if not self.active or time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + self.prune_every
        try:
            deleted = self.store.prune(retain_days=self.retain_days,
                                       max_messages=self.max_messages)
        except StoreError as exc:
            log.error("retention: %s", exc)
            return
        if deleted:
            log.info("retention: deleted %d old messages", deleted)
            self._next_prune = time.monotonic() + 1.0  # more to do: continue soon
