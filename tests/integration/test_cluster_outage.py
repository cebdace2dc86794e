"""Redis stops and comes back under a running cluster: one notice, lines held, then every
held line delivered once, in order, on every node. Nodes in this process; the test's own
Redis with appendonly (what docs/cluster.md recommends), restarted on the same port."""

from __future__ import annotations

import time

import pytest

from helpers import JsonClient, RedisServer, wait_for

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def durable_redis(tmp_path):
    import shutil

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    running = RedisServer(str(tmp_path / "redis"), appendonly=True)
    try:
        yield running
    finally:
        running.stop()


def _texts(frames: list[dict], kind: str = "message") -> list[str]:
    return [f["text"] for f in frames if f["type"] == kind]


@pytest.mark.parametrize("outage", [1.0, 7.0], ids=["short", "past-the-heartbeat"])
def test_lines_sent_while_redis_is_down_are_held_then_delivered_once(
        durable_redis, server_factory, opened, outage):
    a = server_factory(cluster=durable_redis.url, tls=False)
    b = server_factory(cluster=durable_redis.url, tls=False)
    alice, bob = JsonClient(a.port, "alice"), JsonClient(b.port, "bob")
    opened += [alice, bob]
    alice.expect("join", nick="bob")
    before = bob.request({"type": "msg", "room": "lobby", "text": "before"})
    durable_redis.stop()
    assert "not answering" in alice.expect("notice")["text"]
    assert "not answering" in bob.expect("notice")["text"]
    for i in range(5):
        alice.send({"type": "msg", "room": "lobby", "text": f"held {i}", "ref": f"h{i}"})
    refused = bob.request({"type": "nick", "nick": "robert"})  # needs Redis: refused by name
    assert refused["type"] == "error" and refused["code"] == "cluster_unavailable"
    time.sleep(outage)  # the outage itself: how long Redis stays down
    durable_redis.start()
    assert "is back" in bob.expect("notice", timeout=10)["text"]
    echoes = [alice.expect("message", ref=f"h{i}", timeout=10) for i in range(5)]
    heard = [bob.expect("message", text=f"held {i}", timeout=10) for i in range(5)]
    assert [e["id"] for e in echoes] == [h["id"] for h in heard]
    assert all(h["id"] > before["id"] for h in heard)
    # nothing twice, and the cluster goes on: a line after the outage, then everyone's view
    after = alice.request({"type": "msg", "room": "lobby", "text": "after"})
    bob.expect("message", text="after")
    assert _texts(bob.frames).count("held 0") == 1
    assert [t for t in _texts(bob.frames) if t.startswith("held")] == \
        [f"held {i}" for i in range(5)]
    assert after["id"] > heard[-1]["id"]
    # nobody was logged out: the nodes did not reap each other when Redis came back
    who = {u["nick"] for u in bob.request({"type": "who"})["users"]}
    assert who == {"alice", "bob"}
    assert not [f for f in bob.frames if f["type"] == "quit"]


def test_redis_restarted_empty_is_told_again_who_is_connected(
        redis_server, server_factory, opened):
    a = server_factory(cluster=redis_server.url, tls=False)
    b = server_factory(cluster=redis_server.url, tls=False)
    alice, bob = JsonClient(a.port, "alice"), JsonClient(b.port, "bob")
    opened += [alice, bob]
    alice.expect("join", nick="bob")
    last = bob.request({"type": "msg", "room": "lobby", "text": "before"})["id"]
    redis_server.stop()  # no persistence: it comes back empty
    bob.expect("notice")
    redis_server.start()
    bob.expect("notice", timeout=10)  # back
    # the nicknames are claimed again: nobody else can take them
    def refused() -> bool:
        late = JsonClient(b.port)
        opened.append(late)
        late.send({"type": "hello", "version": 1, "nick": "alice", "room": None})
        answer = late.read_frame()
        late.close()
        return answer is not None and answer.get("code") == "nick_taken"

    wait_for(refused, timeout=10, message="alice's nick claimed again")
    after = alice.request({"type": "msg", "room": "lobby", "text": "after"})
    assert bob.expect("message", text="after")["id"] == after["id"] > last


def test_a_node_stopped_gracefully_has_its_people_quit_at_once(cluster, opened):
    a, b = cluster(tls=False), cluster(tls=False)
    alice, bob = JsonClient(a.port, "alice"), JsonClient(b.port, "bob")
    opened += [alice, bob]
    alice.expect("join", nick="bob")
    started = time.monotonic()
    a.stop()
    quit_ = bob.expect("quit", nick="alice", timeout=5)
    assert time.monotonic() - started < 4  # not the 5 s of an expired heartbeat
    assert quit_["reason"]
    again = JsonClient(b.port, "alice")
    opened.append(again)
    assert again.welcome["nick"] == "alice"


def test_a_node_that_died_while_redis_lost_its_data_is_forgotten(
        redis_server, server_factory, opened, tmp_path):
    import signal

    from helpers import ServeProcess

    doomed = ServeProcess.start(["--no-discovery", "--no-tls", "--no-history",
                                 "--cluster", redis_server.url, "--rate-limit", "0"],
                                env_home=str(tmp_path / "doomed-home"))
    try:
        b = server_factory(cluster=redis_server.url, tls=False)
        alice, bob = JsonClient(doomed.port, "alice"), JsonClient(b.port, "bob")
        opened += [alice, bob]

        def seen() -> set[str]:
            return {u["nick"] for u in bob.request({"type": "who"})["users"]}

        wait_for(lambda: "alice" in seen(), timeout=10, message="alice seen on node b")
        redis_server.stop()
        doomed.stop(signal.SIGKILL)
        redis_server.start()  # empty, and alice's node will never tell it again
        wait_for(lambda: "alice" not in seen(), timeout=20,
                 message="alice's dead node forgotten")
        taken = JsonClient(b.port, "alice")
        opened.append(taken)
        assert taken.welcome["nick"] == "alice"
    finally:
        doomed.stop(signal.SIGKILL)
