"""The gateway's database thread pool: each call goes to the thread that became idle last, up to
max_workers calls run at once, and shutting down runs what is queued, then ends every thread."""
import asyncio
import threading

import pytest
from django.db import connections

from smtp_gateway.db import DatabaseExecutor, MostRecentlyIdlePool


def test_a_call_returns_its_result_or_raises_its_exception():
    pool = MostRecentlyIdlePool(2, thread_name_prefix="t")
    try:
        assert pool.submit(lambda a, b: a + b, 2, b=3).result(5) == 5
        with pytest.raises(ZeroDivisionError):
            pool.submit(lambda: 1 / 0).result(5)
        assert pool.submit(lambda: "still works").result(5) == "still works"
    finally:
        pool.shutdown()


def test_calls_one_after_another_stay_on_one_thread():
    pool = MostRecentlyIdlePool(8, thread_name_prefix="t")
    try:
        names = {pool.submit(lambda: threading.current_thread().name).result(5) for _ in range(50)}
        assert len(names) == 1
        assert pool.thread_count == 1
    finally:
        pool.shutdown()


def test_the_most_recently_idle_thread_takes_the_next_call():
    pool = MostRecentlyIdlePool(3, thread_name_prefix="t")
    try:
        together = threading.Barrier(3, timeout=5)

        def meet():
            together.wait()
            return threading.current_thread().name

        assert len({f.result(5) for f in [pool.submit(meet) for _ in range(3)]}) == 3
        release = threading.Event()
        blocked = pool.submit(lambda: release.wait(5))  # takes the last idle thread
        first = pool.submit(lambda: threading.current_thread().name).result(5)
        # That thread is idle last now: it takes every following call while the others sleep.
        assert {pool.submit(lambda: threading.current_thread().name).result(5) for _ in range(10)} == {first}
        release.set()
        assert blocked.result(5) is True
    finally:
        pool.shutdown()


def test_up_to_max_workers_calls_run_at_once_and_the_rest_wait():
    pool = MostRecentlyIdlePool(2, thread_name_prefix="t")
    try:
        release = threading.Event()
        running = []

        def block(n):
            running.append(n)
            release.wait(5)
            return n

        futures = [pool.submit(block, n) for n in range(3)]
        for _ in range(100):
            if len(running) == 2:
                break
            threading.Event().wait(0.01)
        assert sorted(running) == [0, 1]  # the third waits for a free thread
        assert pool.thread_count == 2
        release.set()
        assert [f.result(5) for f in futures] == [0, 1, 2]
    finally:
        pool.shutdown()


def test_shutdown_runs_queued_calls_then_ends_every_thread():
    pool = MostRecentlyIdlePool(1, thread_name_prefix="t")
    release = threading.Event()
    first = pool.submit(lambda: release.wait(5))
    queued = pool.submit(lambda: "ran")
    threading.Timer(0.1, release.set).start()
    pool.shutdown(wait=True)
    assert first.result(0) is True and queued.result(0) == "ran"
    assert not any(thread.is_alive() for thread in pool._threads)
    with pytest.raises(RuntimeError):
        pool.submit(lambda: None)


@pytest.mark.django_db(transaction=True)
def test_close_all_closes_the_connection_of_every_thread():
    executor = DatabaseExecutor(2)
    together = threading.Barrier(2, timeout=5)

    def query_together():
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
        together.wait()
        return connections["default"]  # this thread's own connection

    async def both():
        return await asyncio.gather(executor.run(query_together), executor.run(query_together))

    used = asyncio.run(both())
    assert used[0] is not used[1] and all(c.connection is not None for c in used)
    executor.close_all()
    assert all(c.connection is None for c in used)
