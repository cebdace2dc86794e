"""The reader pool (chatkit/server/doors/threads.py): one thread per connection, from threads
started ahead of need, reused, and all ended at stop."""

from __future__ import annotations

import threading

from chatkit.server.doors.threads import ReaderPool

from helpers import wait_for


def test_each_job_gets_a_thread_of_its_own_at_once_and_they_run_together():
    pool = ReaderPool(spare=2)
    pool.start()
    release = threading.Event()
    names: list[str] = []
    started = threading.Semaphore(0)

    def job() -> None:
        names.append(threading.current_thread().name)
        started.release()
        release.wait(10)

    try:
        for number in range(20):  # more than the spare threads: the spawners catch up
            pool.run(job, f"conn-{number}", lambda reason: None)
        for _ in range(20):
            assert started.acquire(timeout=10), "a job waited for another to finish"
        assert sorted(names) == sorted(f"conn-{n}" for n in range(20))
        assert pool.busy() == 20
    finally:
        release.set()
        pool.stop()


def test_a_finished_thread_serves_the_next_connection_and_stop_ends_them_all():
    before = set(threading.enumerate())
    pool = ReaderPool(spare=1)
    pool.start()
    idents: list[int | None] = []
    done = threading.Semaphore(0)

    def job() -> None:
        idents.append(threading.get_ident())
        done.release()

    for number in range(5):
        pool.run(job, f"conn-{number}", lambda reason: None)
        assert done.acquire(timeout=10)
    assert len(set(idents)) < 5, "threads were not reused"
    wait_for(lambda: pool.busy() == 0, message="threads parked again")
    pool.stop()
    assert set(threading.enumerate()) <= before, "the pool left threads behind"


def test_a_job_handed_in_while_stopping_is_turned_away_not_dropped():
    pool = ReaderPool(spare=1)
    pool.start()
    pool.stop()
    reasons: list[str] = []
    pool.run(lambda: None, "late", reasons.append)
    assert reasons == ["server shutting down"]


def test_a_failing_job_costs_its_own_connection_only():
    pool = ReaderPool(spare=1)
    pool.start()
    ran = threading.Event()

    def broken() -> None:
        raise ValueError("bug")

    try:
        pool.run(broken, "broken", lambda reason: None)
        pool.run(ran.set, "fine", lambda reason: None)
        assert ran.wait(10)
    finally:
        pool.stop()
