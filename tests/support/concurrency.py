"""Racing one piece of work against itself: threads released together, each on its own
database connection (transactional tests only: the threads must see each other's commits)."""
import threading

from django.db import connection


def run_concurrently(workers, target, *, timeout=60):
    """Call `target(index)` in `workers` threads released at once by a barrier. Returns what each
    call returned, or the exception it raised, in the order they finished."""
    barrier = threading.Barrier(workers)
    outcomes = []

    def run(index):
        try:
            barrier.wait()
            outcomes.append(target(index))
        except Exception as exc:  # noqa: BLE001 - returned for the test's assertions
            outcomes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return outcomes
