"""Trust on first use: the fingerprints this machine has pinned per server address, like SSH's
known_hosts, and the check of a presented certificate against them; and the names (and
instance ids) discovery found those servers under, so a server found by name that presents
another certificate gets the same warning as a changed certificate on a known address."""

from __future__ import annotations

import json
from pathlib import Path

from chatkit.errors import ChatkitError, ExitCode
from chatkit.net.addresses import host_of


class TrustError(ChatkitError):
    """The server presented a certificate other than the one pinned for it, or than the one
    announced for it (`announced`: by discovery, or by a node of its cluster)."""

    exit_code = ExitCode.IDENTITY

    def __init__(self, message: str, *, announced: str | None = None) -> None:
        super().__init__(message)
        self.announced = announced


class KnownServers:
    """Pinned server fingerprints, like SSH's known_hosts: `known_servers.json` in the config
    directory, mapping "host:port" to a fingerprint."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ChatkitError(f"cannot read {self.path}: {exc}; fix or delete it") from None
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def all(self) -> dict[str, str]:
        return self._load()

    def get(self, address: str) -> str | None:
        return self._load().get(address)

    def pin(self, address: str, value: str) -> None:
        known = self._load()
        known[address] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n")
        temporary.replace(self.path)

    def matching(self, host: str) -> list[str]:
        """The pinned `host:port` entries of `host` (any port), for "did you mean"."""
        wanted = host.strip("[]").casefold()
        return [address for address in sorted(self._load())
                if host_of(address).casefold() == wanted]

    def forget(self, address: str) -> bool:
        known = self._load()
        if known.pop(address, None) is None:
            return False
        self.path.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n")
        return True

    def verify(self, address: str, presented: str, expected: str | None = None) -> bool:
        """Check `presented` against the pin (and against `expected`, e.g. from discovery).

        Returns True when the server was new and has just been pinned; raises TrustError on a
        mismatch.
        """
        new = self.check(address, presented, expected)
        if new:
            self.pin(address, presented)
        return new

    def check(self, address: str, presented: str, expected: str | None = None) -> bool:
        """`verify` without pinning: True when `address` has no pin yet (the caller pins it
        once the server has proved to speak chatkit); raises TrustError on a mismatch."""
        if expected is not None and expected != presented:
            raise TrustError(
                f"{address} presented certificate {presented} but discovery announced "
                f"{expected}; someone may be impersonating the server. Not connecting.",
                announced=expected)
        pinned = self.get(address)
        if pinned is None:
            return True
        if pinned != presented:
            raise TrustError(
                f"SERVER IDENTITY CHANGED for {address}: pinned {pinned}, presented "
                f"{presented}. Someone may be intercepting the connection, or the server got a "
                f"new certificate. If you trust the change, run "
                f"`chatkit trust --forget {address}` and connect again.")
        return False
