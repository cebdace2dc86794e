"""Lists too long for one frame, in pages: every frame the server writes fits in MAX_FRAME.

A `who`, `rooms` or `joined` reply carries a list that grows with the server (300 users make
a 12 KB `who`). `paged` cuts such a list into as many frames as it takes, each measured as it
will be encoded (its `ref` and the largest possible `id` and `ts` included); a list that fits
in one frame is sent as before, without `page` or `more` (docs/protocol.md, "Pages").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from chatkit.protocol import MAX_FRAME, Frame, json_size

T = TypeVar("T")

#: what `,"page":N,"more":false` and the largest id and time can add to a measured frame
_PAGE_ALLOWANCE = 64
_STAMP_PLACEHOLDER = {"id": 0, "ts": 0.0}


def chunks(items: Sequence[T], empty: Frame, key: str, limit: int = MAX_FRAME) -> list[list[T]]:
    """`items` in runs such that `empty` with `key` set to each run fits in `limit` bytes.

    `empty` is the frame with an empty list (and its `ref`, if any). Every run holds at least
    one item (an item is bounded by the protocol, so one always fits); no items, one empty
    run."""
    base = json_size({**empty, key: [], **_STAMP_PLACEHOLDER}) + 1 + _PAGE_ALLOWANCE
    # The usual case, measured at once: item by item costs a serialisation per item, which
    # made a crowd's join storm spend a third of its time here.
    if base + json_size(items) <= limit:
        return [list(items)]
    runs: list[list[T]] = []
    current: list[T] = []
    size = base
    for item in items:
        cost = json_size(item) + 1  # the comma
        if current and size + cost > limit:
            runs.append(current)
            current, size = [], base
        current.append(item)
        size += cost
    runs.append(current)
    return runs


def paged(items: Sequence[T], key: str, empty: Frame, stamp: Callable[[], tuple[int, float]],
          ref: object = None) -> list[Frame]:
    """The frames of a reply whose list `key` is `items`: `empty` is the reply without its
    list, id, time and `ref`; each frame gets a fresh `stamp()`, the request's `ref`, and
    `page`/`more` when there are several."""
    measured = dict(empty)
    if isinstance(ref, (str, int)):
        measured["ref"] = ref
    runs = chunks(items, measured, key)
    frames: list[Frame] = []
    for number, run in enumerate(runs):
        frame: dict[str, Any] = {**empty, key: run}
        frame["id"], frame["ts"] = stamp()
        if len(runs) > 1:
            frame["page"] = number
            frame["more"] = number < len(runs) - 1
        if isinstance(ref, (str, int)):
            frame["ref"] = ref
        frames.append(frame)
    return frames
