"""Accounts and moderation shared by every node of a cluster: the `Records` of the hub
(chatkit/store/records.py), kept in the cluster's Redis instead of one node's SQLite file.

Keys (under the cluster's prefix): `acct` (account key -> name, secret, admin, created),
`rooms` (room key -> settings), `roles` ("room|account|role"), `sanctions` (id -> the ban or
mute) and `sanction_seq` (ids, cluster-wide). A change that touches several keys is one Lua
script. After each write a `reload` note goes into the cluster's log: the other nodes read
accounts or moderation again (hub/accounts.py `reload`, hub/moderation.py `load`), as a lone
server does on SIGHUP, and apply new bans to their own people.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from chatkit.protocol.names import name_key
from chatkit.protocol.sanitize import sanitize_frame
from chatkit.server.bus.cluster_redis import PREFIX, RedisLog, load_json
from chatkit.store import Account, Records, RoomSettings, Sanction, StoreError

_SET_FIELD = r"""
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local row = cjson.decode(raw)
row[tonumber(ARGV[2])] = cjson.decode(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(row))
return 1
"""

# KEYS: acct, roles, rooms; ARGV: account key
_REMOVE_ACCOUNT = r"""
local gone = redis.call('HDEL', KEYS[1], ARGV[1])
local roles = redis.call('HKEYS', KEYS[2])
for _, field in ipairs(roles) do
  local _, account = string.match(field, '^([^|]*)|([^|]*)|')
  if account == ARGV[1] then redis.call('HDEL', KEYS[2], field) end
end
local rooms = redis.call('HGETALL', KEYS[3])
for i = 1, #rooms, 2 do
  local row = cjson.decode(rooms[i + 1])
  if row[2] == ARGV[1] then
    row[2] = cjson.null
    redis.call('HSET', KEYS[3], rooms[i], cjson.encode(row))
  end
end
return gone
"""

# KEYS: sanctions; ARGV: id, what, room key ('' server-wide), kind, value, the row as JSON
_ADD_SANCTION = r"""
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local row = cjson.decode(all[i + 1])
  if row[1] == ARGV[2] and row[10] == ARGV[3] and row[3] == ARGV[4] and row[4] == ARGV[5] then
    redis.call('HDEL', KEYS[1], all[i])
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[6])
return 1
"""


class RedisRecords(Records):
    """`Records` over the cluster's Redis (see the module docstring). Every method raises
    StoreError when Redis does not answer, as the SQLite one does for a database problem."""

    def __init__(self, link: RedisLog) -> None:  # no SQLite connection: every method is here
        self.link = link
        self.path = f"the cluster's Redis at {link.where}"
        self.redis = link.redis
        self._set_field = self.redis.register_script(_SET_FIELD)
        self._remove_account = self.redis.register_script(_REMOVE_ACCOUNT)
        self._add_sanction = self.redis.register_script(_ADD_SANCTION)

    def close(self) -> None:
        pass  # the bus closes the link

    def _do(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (redis.RedisError, OSError) as exc:
            raise StoreError(f"{self.path} did not answer: {exc}") from None

    def _changed(self, kind: str) -> None:
        """Tell the other nodes to read `kind` again (best effort: they also do on SIGHUP)."""
        try:
            self.link.note({"r": kind})
        except Exception:  # noqa: BLE001 - the write itself succeeded
            pass

    # ------------------------------------------------------------------ accounts

    def account(self, name: str) -> Account | None:
        raw = self._do(self.redis.hget, PREFIX + "acct", name_key(name))
        return _account(raw)

    def accounts(self) -> list[Account]:
        raw = self._do(self.redis.hgetall, PREFIX + "acct")
        found = [_account(value) for _key, value in sorted(raw.items())]
        return [a for a in found if a is not None]

    def add_account(self, name: str, secret: str) -> bool:
        row = json.dumps([name, secret, False, time.time()])
        added = bool(self._do(self.redis.hsetnx, PREFIX + "acct", name_key(name), row))
        if added:
            self._changed("accounts")
        return added

    def set_secret(self, name: str, secret: str) -> bool:
        return self._set(name, 2, secret)

    def set_admin(self, name: str, admin: bool) -> bool:
        return self._set(name, 3, admin)

    def _set(self, name: str, index: int, value: object) -> bool:
        done = bool(self._do(self._set_field, keys=[PREFIX + "acct"],
                             args=[name_key(name), index, json.dumps(value)]))
        if done:
            self._changed("accounts")
        return done

    def remove_account(self, name: str) -> bool:
        gone = bool(self._do(self._remove_account,
                             keys=[PREFIX + "acct", PREFIX + "roles", PREFIX + "rooms"],
                             args=[name_key(name)]))
        self._changed("accounts")
        self._changed("moderation")
        return gone

    # ------------------------------------------------------------------ rooms

    def room_settings(self) -> dict[str, RoomSettings]:
        settings = {}
        for key, raw in self._do(self.redis.hgetall, PREFIX + "rooms").items():
            row = _json(raw)
            if isinstance(row, list) and len(row) == 5 and isinstance(row[0], str):
                settings[key.decode()] = RoomSettings(
                    row[0], row[1] if isinstance(row[1], str) else None,
                    bool(row[2]), bool(row[3]), bool(row[4]))
        return settings

    def save_room(self, settings: RoomSettings) -> None:
        self._do(self.redis.hset, PREFIX + "rooms", name_key(settings.room), json.dumps(
            [settings.room, settings.founder, settings.moderated, settings.invite_only,
             settings.topic_lock]))
        self._changed("moderation")

    def roles(self) -> list[tuple[str, str, str]]:
        found = []
        for field in self._do(self.redis.hkeys, PREFIX + "roles"):
            parts = field.decode().split("|")
            if len(parts) == 3:
                found.append((parts[0], parts[1], parts[2]))
        return found

    def set_role(self, room: str, account: str, role: str, given: bool) -> None:
        field = f"{name_key(room)}|{name_key(account)}|{role}"
        if given:
            self._do(self.redis.hset, PREFIX + "roles", field, "1")
        else:
            self._do(self.redis.hdel, PREFIX + "roles", field)
        self._changed("moderation")

    # ------------------------------------------------------------------ bans and mutes

    def sanctions(self, now: float | None = None) -> list[Sanction]:
        now = time.time() if now is None else now
        found = []
        for key, raw in self._do(self.redis.hgetall, PREFIX + "sanctions").items():
            sanction = _sanction(int(key), raw)
            if sanction is not None and sanction.active(now):
                found.append(sanction)
        return sorted(found, key=lambda s: s.id)

    def last_sanction_id(self) -> int:
        return int(self._do(self.redis.get, PREFIX + "sanction_seq") or 0)

    def reserve_sanction_id(self, proposed: int) -> int:
        return int(self._do(self.redis.incr, PREFIX + "sanction_seq"))

    def add_sanction(self, s: Sanction) -> None:
        room_key = name_key(s.room) if s.room else ""
        row = json.dumps([s.what, s.room, s.kind, s.value, s.label, s.by, s.reason, s.created,
                          s.expires, room_key])
        self._do(self._add_sanction, keys=[PREFIX + "sanctions"],
                 args=[s.id, s.what, room_key, s.kind, s.value, row])
        self._changed("moderation")

    def remove_sanction(self, id_: int) -> bool:
        gone = bool(self._do(self.redis.hdel, PREFIX + "sanctions", id_))
        self._changed("moderation")
        return gone


def _json(raw: bytes | None) -> Any:
    """A stored row, its strings sanitised (names and reasons are shown to clients)."""
    return sanitize_frame(load_json(raw))


def _account(raw: bytes | None) -> Account | None:
    row = _json(raw)
    if not (isinstance(row, list) and len(row) == 4 and isinstance(row[0], str)
            and isinstance(row[1], str) and isinstance(row[3], (int, float))):
        return None
    return Account(row[0], row[1], bool(row[2]), float(row[3]))


def _sanction(id_: int, raw: bytes) -> Sanction | None:
    row = _json(raw)
    if not (isinstance(row, list) and len(row) == 10 and all(
            isinstance(v, str) for v in (row[0], row[2], row[3], row[5]))):
        return None
    what, room, kind, value, label, by, reason, created, expires, _room_key = row
    return Sanction(id_, what, room if isinstance(room, str) else None, kind, value,
                    label if isinstance(label, str) else None, by,
                    reason if isinstance(reason, str) else None,
                    float(created) if isinstance(created, (int, float)) else 0.0,
                    float(expires) if isinstance(expires, (int, float)) else None)
