"""Taking a batch off a bus's queue: what is there now, up to a bound, in order. Both buses
work in batches (one transaction, one Redis script, one send per member) and stop on a marker
put on the same queue, so everything queued before it is still handled."""

from __future__ import annotations

import queue
from typing import Any


def take_batch(source: queue.SimpleQueue[Any], first: object, limit: int, stop: object
               ) -> tuple[list[Any], bool]:
    """`first` (already taken) and whatever else is queued now, up to `limit` items; and
    whether `stop` was among them (it is not in the batch)."""
    batch: list[Any] = []
    stopping = False
    item = first
    while item is not None:
        if item is stop:
            stopping = True
        else:
            batch.append(item)
        if len(batch) >= limit:
            break
        try:
            item = source.get_nowait()
        except queue.Empty:
            item = None
    return batch, stopping
