"""Running Django ORM work from the event loop: in a small thread pool, never on the loop.

Each pool thread owns its database connection (Django connections are per thread); broken or
expired connections are dropped after every call, and `close_all` closes every thread's
connection when the gateway stops."""
import asyncio
import functools
import threading
from collections import deque
from concurrent.futures import Executor, Future

from django.db import close_old_connections, connections


class MostRecentlyIdlePool(Executor):
    """A thread pool that gives each call to the thread that became idle last.

    ThreadPoolExecutor's idle threads all wait on one queue and any of them may take the next
    call, so a gateway with 8 threads and one busy tenant (one batch and one RCPT check in
    flight) spreads its calls over all 8 threads and their database connections. Handing the
    call to the most recently idle thread keeps the work on as few threads (and PostgreSQL
    backends) as the concurrency needs; the others stay asleep. Measured with 20 STARTTLS
    sessions of one tenant (bench/smtp_submission.py, 8 threads): PostgreSQL CPU per message
    10-14 % lower, the gateway's 0-5 %, about what --threads 2 gives, while up to max_workers
    calls still run at once when many tenants need them. Threads start on demand, as
    ThreadPoolExecutor's do."""

    def __init__(self, max_workers, thread_name_prefix):
        self._max_workers = max_workers
        self._thread_name_prefix = thread_name_prefix
        self._lock = threading.Lock()
        self._idle = []  # [wake lock, handed call] of each waiting thread; the last one idle last
        self._queue = deque()  # calls that found no idle thread
        self._threads = []
        self._shutdown = False

    @property
    def thread_count(self):
        with self._lock:
            return len(self._threads)

    def submit(self, fn, /, *args, **kwargs):
        future = Future()
        call = (future, fn, args, kwargs)
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if self._idle:
                waiting = self._idle.pop()
                waiting[1] = call
                waiting[0].release()
                return future
            self._queue.append(call)
            if len(self._threads) < self._max_workers:
                # Daemon, unlike ThreadPoolExecutor's: the gateway shuts the pool down (waiting
                # for running calls) when it stops; an idle pool must not keep a process alive.
                thread = threading.Thread(target=self._work, name=f"{self._thread_name_prefix}_{len(self._threads)}",
                                          daemon=True)
                self._threads.append(thread)
                thread.start()
        return future

    def _work(self):
        me = [threading.Lock(), None]
        me[0].acquire()  # released by whoever hands this thread a call (or by shutdown)
        while True:
            call, me[1] = me[1], None
            if call is None:
                with self._lock:
                    if self._queue:
                        call = self._queue.popleft()
                    elif self._shutdown:
                        return
                    else:
                        self._idle.append(me)
                if call is None:
                    me[0].acquire()
                    continue
            future, fn, args, kwargs = call
            del call
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:  # noqa: BLE001 - the caller gets it, as from ThreadPoolExecutor
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del future, fn, args, kwargs  # do not keep the last call's objects alive while idle

    def shutdown(self, wait=True):
        """Queued calls still run; then every thread ends."""
        with self._lock:
            self._shutdown = True
            idle, self._idle = self._idle, []
            threads = list(self._threads)
        for waiting in idle:
            waiting[0].release()
        if wait:
            for thread in threads:
                thread.join()


class DatabaseExecutor:
    def __init__(self, max_workers):
        self._pool = MostRecentlyIdlePool(max_workers, thread_name_prefix="smtp-db")

    async def run(self, fn, /, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, functools.partial(_call_with_fresh_connection, fn, args, kwargs)
        )

    def close_all(self, timeout=10.0):
        """Close the connection of every pool thread, then stop the pool (waits for running calls)."""
        threads = self._pool.thread_count
        if threads:
            # One task per thread: each blocks at the barrier until all have arrived, so every
            # thread runs exactly one of them.
            barrier = threading.Barrier(threads, timeout=timeout)

            def close_mine():
                connections.close_all()
                try:
                    barrier.wait()
                except threading.BrokenBarrierError:
                    pass

            for future in [self._pool.submit(close_mine) for _ in range(threads)]:
                future.result(timeout=timeout + 1)
        self._pool.shutdown(wait=True)


def _call_with_fresh_connection(fn, args, kwargs):
    # Once per call, like once per request in the web process: a connection that failed or
    # outlived CONN_MAX_AGE is closed here and the next call (health-checked) opens a new one.
    try:
        return fn(*args, **kwargs)
    finally:
        close_old_connections()
