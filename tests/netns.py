"""Network namespaces for the tests that need hosts of their own (discovery, a cluster): the
`ip` command, and why namespaces cannot be made here, if they cannot."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`ip ARGS`, bounded; with `check`, a failure raises RuntimeError with ip's message."""
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def unusable_reason() -> str | None:
    """Why this machine cannot give a test network namespaces, or None when it can."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed (apt-get install -y iproute2)"
    return None
