"""The cluster's state in Redis, and the few atomic steps that change it (Lua scripts).

Keys, all under one prefix (`chatkit:` and the database of the URL):

    seq                  the last event id given (INCR): ids are cluster-wide
    log                  a stream of every event and membership change: one order for the
                         whole cluster; every node reads it (XREAD BLOCK). A node's batch is
                         one entry `<id>-0` (`b`: its `n` items, with the ids up to <id>); a
                         reaped node's quits and the notes are entries of one item each
    room:<key>           a stream of one room's stored events (same ids, the batch's item):
                         history and gap fill
    topics               room key -> the topic as JSON
    nicks                nick key -> "node|token|client id|claim": who holds each nickname
    claims               the last claim generation (INCR): the newer claim wins
    members:<node>       nick key -> that node's member as JSON (nick, rooms, quiet)
    lastseq              node -> the last of its batches appended (appends are idempotent)
    nodes                the set of nodes taking part;  alive:<node>  its heartbeat (expires)
    nodeinfo             node -> its addresses, fingerprint and users, as JSON

Everything a node changes goes through `append`, one script per batch, so the log and the state
beside it never disagree. Redis runs scripts one at a time: that is the cluster's lock.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis

from chatkit.errors import ChatkitError
from chatkit.protocol.sanitize import sanitize_frame
from chatkit.server.hub.history import stored_row
from chatkit.store import SavedTopic, StoredMessage

PREFIX = "chatkit:"
LOG_MAX = 100_000  # entries kept in the cluster's log (nodes read it live)
ROOM_MAX = 10_000  # stored events kept per room: history and gap fill reach this far
ALIVE_MS = 5_000  # a node whose heartbeat is older than this is gone

# ARGV: prefix, node, id floor, log max, room max, the batch's last sequence number, its count,
# its items (a JSON list), the stored events of rooms (a line each: "index first last room-key",
# the item's byte offsets in the list: the room's stream keeps the same item), then what
# changes beside the log, in the batch's order:
#   'm', nick key, record JSON or '', token, old nick key or ''   this node's member changed
#   't', room key, topic JSON or ''              the room's topic
# -> the last sequence number appended. A batch retried after its answer was lost (its last
# sequence number is not newer than this node's last) is not appended twice.
_APPEND = r"""
local p, node = ARGV[1], ARGV[2]
local last = tonumber(redis.call('HGET', p..'lastseq', node) or '0')
if tonumber(ARGV[6]) <= last then return last end
if tonumber(redis.call('GET', p..'seq') or '0') < tonumber(ARGV[3]) then
  redis.call('SET', p..'seq', ARGV[3])
end
local function release(key, tok)
  local held = redis.call('HGET', p..'nicks', key)
  if held and string.sub(held, 1, #node + #tok + 2) == node..'|'..tok..'|' then
    redis.call('HDEL', p..'nicks', key)
  end
end
local top = redis.call('INCRBY', p..'seq', tonumber(ARGV[7]))
local first = top - tonumber(ARGV[7]) + 1
local items = ARGV[8]
redis.call('XADD', p..'log', 'MAXLEN', '~', ARGV[4], top..'-0', 'o', node, 's', ARGV[6],
           'n', ARGV[7], 'b', items)
for index, from, to, room in string.gmatch(ARGV[9], '(%d+) (%d+) (%d+) ([^\n]*)\n') do
  redis.call('XADD', p..'room:'..room, 'MAXLEN', '~', ARGV[5],
             (first + tonumber(index))..'-0', 'i', string.sub(items, tonumber(from), tonumber(to)))
end
local i = 10
while i <= #ARGV do
  local op = ARGV[i]
  if op == 'm' then
    local key, rec, tok, old = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
    if rec ~= '' then redis.call('HSET', p..'members:'..node, key, rec)
    else redis.call('HDEL', p..'members:'..node, key); release(key, tok) end
    if old ~= '' then redis.call('HDEL', p..'members:'..node, old); release(old, tok) end
    i = i + 5
  elseif op == 't' then
    if ARGV[i + 2] ~= '' then redis.call('HSET', p..'topics', ARGV[i + 1], ARGV[i + 2])
    else redis.call('HDEL', p..'topics', ARGV[i + 1]) end
    i = i + 3
  else
    return redis.error_reply('chatkit: unknown change ' .. tostring(op))
  end
end
redis.call('HSET', p..'lastseq', node, ARGV[6])
return tonumber(ARGV[6])
"""

# ARGV: prefix, nick key, node, token, client id, takes over a member of another node ("1")
# -> claim generation, or 0 (held by a live node, or not yet), negative when taken from a
# live node (the same client, moved)
_CLAIM = r"""
local p = ARGV[1]
local held = redis.call('HGET', p..'nicks', ARGV[2])
local from_live = false
-- taking over from a member this node shows on another node, which Redis does not know:
-- its node is telling Redis again (an emptied Redis), or its quit is on its way: not yet
if not held and ARGV[6] == '1' then return 0 end
if held then
  local hn, ht, hc = string.match(held, '^([^|]*)|([^|]*)|([^|]*)|')
  if hn ~= ARGV[3] and redis.call('EXISTS', p..'alive:'..hn) == 1 then
    if ARGV[6] ~= '1' or ARGV[5] == '' or hc ~= ARGV[5] then return 0 end
    from_live = true
  end
end
local gen = redis.call('INCR', p..'claims')
redis.call('HSET', p..'nicks', ARGV[2], ARGV[3]..'|'..ARGV[4]..'|'..ARGV[5]..'|'..gen)
if from_live then return -gen end
return gen
"""

# ARGV: prefix, dead node, reason, now -> 1 if this call reaped it
# Its members quit (one log entry each, to their co-members on every node), its nicknames are
# freed unless another node claimed one since (a client that moved), and it leaves the set.
_REAP = r"""
local p, dead = ARGV[1], ARGV[2]
if redis.call('SREM', p..'nodes', dead) == 0 then return 0 end
local members = redis.call('HGETALL', p..'members:'..dead)
for i = 1, #members, 2 do
  local key, rec = members[i], cjson.decode(members[i + 1])
  local held = redis.call('HGET', p..'nicks', key)
  if held and string.sub(held, 1, #dead + 1) == dead..'|' then
    redis.call('HDEL', p..'nicks', key)
    if not rec.quiet then
      local event = cjson.encode({type = 'quit', nick = rec.nick, reason = ARGV[3], id = 0,
                                  ts = tonumber(ARGV[4])})
      local sid = redis.call('INCR', p..'seq')..'-0'
      redis.call('XADD', p..'log', 'MAXLEN', '~', '100000', sid, 'o', '', 's', '0',
                 'e', event, 't', cjson.encode({co = key, node = dead}))
    end
  end
end
local sid = redis.call('INCR', p..'seq')..'-0'
redis.call('XADD', p..'log', 'MAXLEN', '~', '100000', sid, 'o', '', 's', '0', 'g', dead)
redis.call('DEL', p..'members:'..dead, p..'alive:'..dead)
redis.call('HDEL', p..'nodeinfo', dead)
redis.call('HDEL', p..'lastseq', dead)
return 1
"""

# ARGV: prefix, node, log max, then field, value, ... -> the entry's id
_NOTE = r"""
local sid = redis.call('INCR', ARGV[1]..'seq')..'-0'
local fields = {'o', ARGV[2], 's', '0'}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('XADD', ARGV[1]..'log', 'MAXLEN', '~', ARGV[3], sid, unpack(fields))
return sid
"""

# ARGV: prefix -> {last id, topics..., then per live node: node, its members...}
_SNAPSHOT = r"""
local p = ARGV[1]
local out = {redis.call('GET', p..'seq') or '0', redis.call('HGETALL', p..'topics')}
for _, node in ipairs(redis.call('SMEMBERS', p..'nodes')) do
  out[#out + 1] = node
  out[#out + 1] = redis.call('HGETALL', p..'members:'..node)
end
return out
"""


def safe_url(url: str) -> str:
    """`url` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = (f"{parts.username}:***@" if parts.username else ":***@") + host + (
        f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class EncodedBatch:
    """A batch of one node's entries as `_APPEND` takes it."""

    last_seq: int  # of the batch's last entry: the node's sequence numbers are consecutive
    count: int
    items: bytes  # a JSON list, an item per entry
    rooms: str  # the items the rooms' streams keep (see `_APPEND`)
    changes: list[object]  # what else changes beside the log


class ClusterUnavailable(Exception):
    """Redis did not answer (down, unreachable, restarting)."""


class RedisLog:
    """One node's handle on the cluster's Redis: the scripts above and the plain reads."""

    def __init__(self, url: str, node: str) -> None:
        self.url, self.node = url, node
        self.where = safe_url(url)  # for messages: never the password
        try:
            self.redis = redis.Redis.from_url(url, socket_timeout=5.0,
                                              socket_connect_timeout=3.0,
                                              health_check_interval=10)
            self.redis.ping()
        except (redis.RedisError, ValueError, OSError) as exc:
            raise ChatkitError(f"cannot reach the cluster's Redis at {safe_url(url)}: "
                               f"{_reason(exc)}", remedy="check_cluster") from None
        self._append = self.redis.register_script(_APPEND)
        self._claim = self.redis.register_script(_CLAIM)
        self._reap = self.redis.register_script(_REAP)
        self._snapshot = self.redis.register_script(_SNAPSHOT)
        self._note = self.redis.register_script(_NOTE)
        # XREAD BLOCK holds its connection: the reader gets one of its own
        self.reader = redis.Redis(connection_pool=redis.ConnectionPool.from_url(
            url, socket_timeout=10.0, socket_connect_timeout=3.0))

    def close(self) -> None:
        self.redis.close()
        self.reader.close()

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise ClusterUnavailable(_reason(exc)) from None
        except redis.ResponseError as exc:
            if "LOADING" in str(exc) or "BUSY" in str(exc):
                raise ClusterUnavailable(str(exc)) from None
            raise

    # ------------------------------------------------------------------ writes

    def append(self, batch: EncodedBatch, floor: int) -> None:
        """Append one batch of this node's entries (cluster_entries.encode_batch) as one entry
        of the log, and make the changes beside it (`_APPEND`)."""
        self._call(self._append, args=[PREFIX, self.node, floor, LOG_MAX, ROOM_MAX,
                                       batch.last_seq, batch.count, batch.items,
                                       batch.rooms, *batch.changes])

    def claim(self, key: str, token: str, client_id: str | None, take_over: bool) -> int:
        return int(self._call(self._claim, args=[PREFIX, key, self.node, token, client_id or "",
                                                 "1" if take_over else "0"]))

    def note(self, fields: dict[str, str]) -> None:
        """An entry of the log that only says something to the nodes (read accounts again, a
        kick for a node's member), in order after what was appended before it."""
        flat = [item for pair in fields.items() for item in pair]
        self._call(self._note, args=[PREFIX, self.node, LOG_MAX, *flat])

    def reap(self, node: str, reason: str) -> bool:
        return bool(self._call(self._reap, args=[PREFIX, node, reason, round(time.time(), 3)]))

    def heartbeat(self, info: dict[str, Any]) -> bool:
        """Say this node is alive; True when it was not in the set of nodes (new, or reaped
        while Redis or this node stalled: its members must be told again)."""
        pipe = self.redis.pipeline()
        pipe.set(f"{PREFIX}alive:{self.node}", "1", px=ALIVE_MS)
        pipe.sadd(f"{PREFIX}nodes", self.node)
        pipe.hset(f"{PREFIX}nodeinfo", self.node, json.dumps(info))
        return bool(self._call(pipe.execute)[1])

    # ------------------------------------------------------------------ reads

    def nodes(self) -> tuple[set[str], set[str]]:
        """(every node in the set, those whose heartbeat expired)."""
        nodes = sorted(n.decode() for n in self._call(self.redis.smembers, f"{PREFIX}nodes"))
        pipe = self.redis.pipeline()
        for node in nodes:
            pipe.exists(f"{PREFIX}alive:{node}")
        alive = self._call(pipe.execute)
        return set(nodes), {node for node, up in zip(nodes, alive, strict=True) if not up}

    def enlist(self, node: str) -> None:
        """Put `node` back in the set of nodes, so that it can be reaped."""
        self._call(self.redis.sadd, f"{PREFIX}nodes", node)

    def node_infos(self) -> dict[str, dict[str, Any]]:
        raw = self._call(self.redis.hgetall, f"{PREFIX}nodeinfo")
        infos: dict[str, dict[str, Any]] = {}
        for node, data in raw.items():
            try:
                info = json.loads(data)
            except ValueError:
                continue
            if isinstance(info, dict):
                infos[node.decode()] = info
        return infos

    def snapshot(self) -> tuple[int, dict[str, SavedTopic], dict[str, dict[str, Any]]]:
        """(last id, topics by room key, members by node then nick key), read atomically."""
        out = self._call(self._snapshot, args=[PREFIX])
        topics: dict[str, SavedTopic] = {}
        raw_topics = out[1]
        for i in range(0, len(raw_topics), 2):
            saved = _topic(raw_topics[i + 1])
            if saved is not None:
                topics[raw_topics[i].decode()] = saved
        members: dict[str, dict[str, Any]] = {}
        for i in range(2, len(out), 2):
            node, pairs = out[i].decode(), out[i + 1]
            members[node] = {pairs[j].decode(): load_json(pairs[j + 1])
                             for j in range(0, len(pairs), 2)}
        return int(out[0]), topics, members

    def read(self, after: int, block_ms: int, count: int
             ) -> list[tuple[int, dict[bytes, bytes]]]:
        """The log's entries after id `after` (waiting up to `block_ms` for one), fields as
        bytes: a node decodes only what it uses (its own entries: two small fields)."""
        got = self._call(self.reader.xread, {f"{PREFIX}log": f"{after}-0"}, count=count,
                         block=block_ms)
        entries: list[tuple[int, dict[bytes, bytes]]] = []
        for _stream, items in got or []:
            for entry_id, fields in items:
                entries.append((int(entry_id.split(b"-")[0]), fields))
        return entries

    def room_history(self, room_key: str, *, limit: int, after: int | None, up_to: int
                     ) -> list[StoredMessage]:
        stream = f"{PREFIX}room:{room_key}"
        if after is None:
            items = list(reversed(self._call(self.redis.xrevrange, stream, f"{up_to}-0", "-",
                                             count=limit)))
        else:
            if after >= up_to:
                return []
            items = self._call(self.redis.xrange, stream, f"({after}-0", f"{up_to}-0",
                               count=limit)
        rows = []
        for entry_id, fields in items:
            row = _row(int(entry_id.split(b"-")[0]), fields)
            if row is not None:
                rows.append(row)
        return rows


def _row(id_: int, fields: dict[bytes, bytes]) -> StoredMessage | None:
    """A room stream's entry as the row the hub makes frames of (hub/history.py, which
    sanitises every string again); None for one that is not a stored event."""
    item = load_json(fields.get(b"i"))
    event, kind = (item.get("e"), item.get("k")) if isinstance(item, dict) else (None, None)
    if not isinstance(event, dict) or kind not in _ROW_KINDS:
        return None
    ts = event.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, (int, float)):
        return None
    row = stored_row({**event, "id": id_}, kind)
    return replace(row, room=row.room if isinstance(row.room, str) else None,
                   nick=row.nick if isinstance(row.nick, str) else "",
                   target=row.target if isinstance(row.target, str) else None,
                   text=row.text if isinstance(row.text, str) else None, ts=float(ts))


_ROW_KINDS = ("message", "action", "topic", "private", "moderation")


def topic_json(saved: SavedTopic) -> str:
    return json.dumps([saved.room, saved.text, saved.nick, saved.ts])


def _topic(data: bytes) -> SavedTopic | None:
    value = sanitize_frame(load_json(data))  # shown to clients: never an escape sequence
    if not isinstance(value, list) or len(value) != 4 or not all(
            isinstance(v, str) for v in value[:3]) or not isinstance(value[3], (int, float)):
        return None
    return SavedTopic(value[0], value[1], value[2], float(value[3]))


def load_json(data: bytes | str | None) -> Any:
    """What Redis holds as JSON, or None for nothing or anything that is not JSON (every
    value read back from Redis goes through here: never an exception)."""
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200].rstrip(".")
