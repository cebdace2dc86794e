"""A CPU budget for one server process: a cgroup's CPU quota.

Does a second node add throughput when each node has a CPU of its own? On a 2-core machine the
load generator needs most of a core, so there is no free core to give a second node. The
cluster cells instead give every chatkit server the same budget, a fraction of one core
(`CpuCap`), and compare one capped node with two capped nodes: the budget runs out long before
the generator does, so what the servers can do is what is measured, not extrapolated.

Needs root and the `cpu` controller: cgroup v1 (`/sys/fs/cgroup/cpu`) or v2 (a unified
`/sys/fs/cgroup` listing `cpu`). Elsewhere `available()` says why not and the cells are skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

V1 = Path("/sys/fs/cgroup/cpu")
V2 = Path("/sys/fs/cgroup")
#: the quota's period: short, so a capped server runs in small slices, not 100 ms bursts
PERIOD_US = 10_000


def available() -> str | None:
    """None when a process's CPU can be capped here (a cgroup was made and removed);
    otherwise why not."""
    if os.geteuid() != 0:
        return "capping a process's CPU needs root (cgroups)"
    controllers = V2 / "cgroup.controllers"
    if not (V1 / "cpu.cfs_quota_us").exists() and not (
            controllers.exists() and "cpu" in controllers.read_text().split()):
        return "no cgroup CPU controller (v1 /sys/fs/cgroup/cpu or v2 with `cpu`)"
    try:
        CpuCap(f"chatkit-bench-probe-{os.getpid()}", 0.5).remove()
    except OSError as exc:
        return f"cannot make a cgroup: {exc}"
    return None


class CpuCap:
    """A cgroup of its own whose processes share `share` of one core (0.25: a quarter)."""

    def __init__(self, name: str, share: float) -> None:
        if not 0 < share <= 64:
            raise ValueError(f"a CPU share of {share} cores")
        quota = max(1_000, round(PERIOD_US * share))  # the kernel's minimum is 1 ms
        if (V1 / "cpu.cfs_quota_us").exists():
            self.path = V1 / name
            limits = {"cpu.cfs_period_us": str(PERIOD_US), "cpu.cfs_quota_us": str(quota)}
        else:
            # v2: the root's children get the cpu controller (systemd usually gave it already)
            subtree = V2 / "cgroup.subtree_control"
            if "cpu" not in subtree.read_text().split():
                subtree.write_text("+cpu")
            self.path = V2 / name
            limits = {"cpu.max": f"{quota} {PERIOD_US}"}
        self.path.mkdir()
        try:
            for knob, value in limits.items():
                (self.path / knob).write_text(value)
        except OSError:
            self.remove()
            raise

    def add(self, pid: int) -> None:
        """Move process `pid` (all its threads, and those it starts later) into the cgroup."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        """Remove the cgroup once its processes are gone (a cgroup with tasks cannot go)."""
        try:
            self.path.rmdir()
        except OSError:
            pass
