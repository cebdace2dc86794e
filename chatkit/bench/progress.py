"""Progress reports while a benchmark runs: the seam between the generator and whoever shows
them (the command line draws a line on a terminal; the generator itself never prints).

With `BenchConfig.progress`, run_bench calls `on_progress(phase, sent, deliveries, errors,
clients)` about every PROGRESS_S seconds; the phase is "connecting", "sending" or
"draining", and a last call with phase DONE (the run is over, however it ended) follows.
"""

from __future__ import annotations

from collections.abc import Callable

#: seconds between two reports
PROGRESS_S = 0.5
#: the phase of the last report
DONE = "done"

#: on_progress(phase, messages sent, deliveries, errors, clients connected)
ProgressCallback = Callable[[str, int, int, int, int], None]
