"""Running Django ORM work from the event loop: in a small thread pool, never on the loop.

Each pool thread owns its database connection (Django connections are per thread); broken or
expired connections are dropped after every call, and `close_all` closes every thread's
connection when the gateway stops."""
import asyncio
import functools
import threading
from concurrent.futures import ThreadPoolExecutor

from django.db import close_old_connections, connections


class DatabaseExecutor:
    def __init__(self, max_workers):
        self._threads = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="smtp-db", initializer=self._thread_started
        )

    def _thread_started(self):
        with self._lock:
            self._threads += 1

    async def run(self, fn, /, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, functools.partial(_call_with_fresh_connection, fn, args, kwargs)
        )

    def close_all(self, timeout=10.0):
        """Close the connection of every pool thread, then stop the pool (waits for running calls)."""
        with self._lock:
            threads = self._threads
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
