"""Group commit for SMTP submissions.

Each accepted message costs a COMMIT (a WAL flush) and holds the tenant's usage-counter row
lock until then, so one tenant's messages are committed one after another. Submissions that
arrive while a batch of the same tenant is being stored wait and go together in the next
transaction: one COMMIT and one lock hold for the batch. Every message still gets its own
checks and its own outcome (a refused message does not affect the others, its writes are
rolled back to its savepoint), and no 250 is sent before the batch's COMMIT."""
import asyncio
import logging
from collections import defaultdict

from django.db import DatabaseError, transaction

from dispatch_site.errors import TemporaryFailure

log = logging.getLogger(__name__)

MAX_BATCH = 25


class SubmissionBatcher:
    def __init__(self, *, db, submit):
        self.db = db
        self.submit = submit
        self._pending = defaultdict(list)  # tenant id -> [(kwargs, future)]
        self._draining = set()

    async def __call__(self, **kwargs):
        """Submit one message (keyword arguments of `submit`); returns its result or raises."""
        future = asyncio.get_running_loop().create_future()
        key = kwargs["tenant"].pk
        self._pending[key].append((kwargs, future))
        if key not in self._draining:
            self._draining.add(key)
            asyncio.get_running_loop().create_task(self._drain(key))
        return await future

    async def _drain(self, key):
        try:
            while self._pending[key]:
                batch = self._pending[key][:MAX_BATCH]
                del self._pending[key][:MAX_BATCH]
                try:
                    outcomes = await self.db.run(self._store_batch, [kwargs for kwargs, _ in batch])
                except Exception as exc:  # noqa: BLE001 - every waiter must get an answer
                    outcomes = [exc] * len(batch)
                for (_, future), outcome in zip(batch, outcomes):
                    if future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self._draining.discard(key)
            if not self._pending.get(key):
                self._pending.pop(key, None)

    def _store_batch(self, items):
        """In a database thread: one transaction, one outcome per item."""
        outcomes = []
        try:
            with transaction.atomic():
                for kwargs in items:
                    try:
                        with transaction.atomic():  # a refused message rolls back alone
                            outcomes.append(self.submit(**kwargs))
                    except DatabaseError:
                        raise  # the transaction is unusable: the whole batch answers 451
                    except Exception as refused:  # noqa: BLE001 - DispatchError, or a bug in one message
                        outcomes.append(refused)
        except DatabaseError:
            log.exception("SMTP: storing a batch of %d message(s) failed", len(items))
            return [TemporaryFailure()] * len(items)
        return outcomes
