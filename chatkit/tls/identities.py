"""The names a pinned server was found under by discovery: trust tied to the server's identity
as well as to its address.

A record is (name, instance id, address, fingerprint), written when a client picks a server
found by discovery. It counts only while the address is pinned to that same fingerprint in
`KnownServers`, which happens after the server answered with a `welcome`: a record of a server
that never completed the chatkit handshake (an impostor refused, a port that is not chatkit)
proves nothing. A server found under a name (or instance id) that is pinned, announcing another
certificate, gets the same refusal as a changed certificate on a known address.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from chatkit.errors import ChatkitError
from chatkit.tls.trust import KnownServers, TrustError

#: records kept at most (the oldest go first)
MAX_RECORDS = 256


@dataclass(frozen=True)
class Sighting:
    """A server as discovery described it."""

    name: str
    instance: str
    address: str
    fingerprint: str | None


class KnownNames:
    """`known_servers.names.json` next to the pinned fingerprints: a list of sightings."""

    def __init__(self, known: KnownServers) -> None:
        self.known = known
        self.path = known.path.with_name(known.path.stem + ".names.json")

    def _load(self) -> list[Sighting]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise ChatkitError(f"cannot read {self.path}: {exc}; fix or delete it") from None
        records = []
        for item in data if isinstance(data, list) else []:
            if isinstance(item, dict) and all(isinstance(item.get(k), str)
                                              for k in ("name", "instance", "address")):
                fingerprint = item.get("fingerprint")
                records.append(Sighting(item["name"], item["instance"], item["address"],
                                        fingerprint if isinstance(fingerprint, str) else None))
        return records

    def _save(self, records: list[Sighting]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps([asdict(r) for r in records[-MAX_RECORDS:]],
                                        indent=2) + "\n")
        temporary.replace(self.path)

    def pinned(self) -> list[Sighting]:
        """The records that count: their address is pinned to their fingerprint."""
        pins = self.known.all()
        return [r for r in self._load()
                if r.fingerprint is not None and pins.get(r.address) == r.fingerprint]

    def of(self, name: str, instance: str) -> list[Sighting]:
        """Pinned records of this name (case-insensitive) or of this instance id."""
        key = name.casefold()
        return [r for r in self.pinned() if r.name.casefold() == key or r.instance == instance]

    def check(self, found: Sighting) -> None:
        """Raise TrustError when `found`'s name or instance id is pinned to certificates
        other than the one it announces (or it announces none)."""
        records = self.of(found.name, found.instance)
        if not records or any(r.fingerprint == found.fingerprint for r in records):
            return
        first = records[-1]
        announced = found.fingerprint or "no certificate"
        raise TrustError(
            f"SERVER IDENTITY CHANGED for server {found.name!r}: pinned {first.fingerprint} "
            f"at {first.address}, but the server of that name at {found.address} announces "
            f"{announced}. Someone may be impersonating the server, or it got a new "
            f"certificate. If you trust the change, run `chatkit trust --forget "
            f"{found.name}` and connect again.")

    def remember(self, found: Sighting) -> None:
        """Note a sighting (it counts once the address is pinned to its fingerprint)."""
        records = [r for r in self._load() if r != found]
        records.append(found)
        self._save(records)

    def forget(self, name: str) -> bool:
        """Forget every record of `name`; False when there was none."""
        records = self._load()
        kept = [r for r in records if r.name.casefold() != name.casefold()]
        if len(kept) == len(records):
            return False
        self._save(kept)
        return True
