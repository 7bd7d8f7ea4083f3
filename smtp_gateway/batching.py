"""Group commit for SMTP submissions, and shared suppression lookups for RCPT answers.

Every committed message costs a COMMIT (a WAL flush) and the tenant's quota counter row is
locked until then, so one tenant's transactions are serialised. Messages of the same tenant and
credential that arrive while earlier ones are being stored wait and are stored together by
`sending.services.submit_raw_many`: one transaction and one commit for the batch. There is no
timer: a message that arrives alone is stored alone, at once; batches form only under load.
Each message is still checked on its own and gets its own outcome, and no 250 is sent before
the commit of its batch."""
import asyncio
from collections import defaultdict
from dataclasses import dataclass

MAX_BATCH = 50
# Batches of one key stored at the same time. One: what arrives while a batch is being stored
# waits for it and goes in the next batch. Two let one batch be checked while another waited
# for its commit, but on a busy machine they only halved the batches: measured under the bench
# load, one in flight cost ~15 % less gateway CPU and ~10 % less PostgreSQL CPU per message for
# the same throughput (bench/README.md, fourth pass).
MAX_IN_FLIGHT = 1


async def _run_batches(pending, run):
    """Take the waiting items (each with a `.future`) MAX_BATCH at a time, `await run(batch)` for
    one outcome per item, and give each waiting session its own: a result, or the exception that
    refused it (all of them the exception when the batch itself failed)."""
    while pending:
        batch = pending[:MAX_BATCH]
        del pending[:MAX_BATCH]
        try:
            outcomes = await run(batch)
        except Exception as exc:  # noqa: BLE001 - every waiting session must get an answer
            outcomes = [exc] * len(batch)
        for item, outcome in zip(batch, outcomes):
            if item.future.done():  # the client went away meanwhile
                continue
            if isinstance(outcome, BaseException):
                item.future.set_exception(outcome)
            else:
                item.future.set_result(outcome)


@dataclass
class _Submission:
    tenant: object
    credential: object
    item: dict
    future: asyncio.Future


class SubmissionBatcher:
    def __init__(self, *, db, store_many):
        """`store_many(tenant, credential, items)` runs in a database thread and returns one
        result or DispatchError per item (sending.services.submit_raw_many)."""
        self.db = db
        self.store_many = store_many
        self._pending = defaultdict(list)  # (tenant id, credential id) -> [_Submission]
        self._in_flight = defaultdict(int)

    async def submit(self, *, tenant, credential, mail_from, rcpt_tos, raw, **checked):
        """Store one message; returns its SubmitResult or raises what refused it. `checked`: what
        the session already checked (see submit_raw_many), passed on with the item."""
        loop = asyncio.get_running_loop()
        key = (tenant.pk, getattr(credential, "pk", None))
        submission = _Submission(tenant, credential, dict(mail_from=mail_from, rcpt_tos=rcpt_tos, raw=raw, **checked),
                                 loop.create_future())
        self._pending[key].append(submission)
        if self._in_flight[key] < MAX_IN_FLIGHT:
            self._in_flight[key] += 1
            loop.create_task(self._drain(key))
        return await submission.future

    async def _drain(self, key):
        pending = self._pending[key]

        def store(batch):
            return self.db.run(self.store_many, batch[0].tenant, batch[0].credential, [s.item for s in batch])

        try:
            await _run_batches(pending, store)
        finally:
            self._in_flight[key] -= 1
            if not self._in_flight[key] and not pending:
                del self._in_flight[key]
                self._pending.pop(key, None)


@dataclass
class _Check:
    tenant: object
    email: str
    future: asyncio.Future


class SuppressionChecks:
    """RCPT answers need the tenant's suppression list, one address at a time. Checks of one
    tenant that arrive while an earlier check of that tenant is running wait for it and are then
    answered together by one query (`are_suppressed(tenant, emails) -> [bool]`, run in a database
    thread). As with submissions there is no timer: a check that arrives alone runs at once."""

    def __init__(self, *, db, are_suppressed):
        self.db = db
        self.are_suppressed = are_suppressed
        self._pending = defaultdict(list)  # tenant id -> [_Check]
        self._running = set()

    async def is_suppressed(self, *, tenant, email) -> bool:
        future = asyncio.get_running_loop().create_future()
        self._pending[tenant.pk].append(_Check(tenant, email, future))
        if tenant.pk not in self._running:
            self._running.add(tenant.pk)
            asyncio.get_running_loop().create_task(self._drain(tenant.pk))
        return await future

    async def _drain(self, key):
        pending = self._pending[key]

        def look_up(batch):
            return self.db.run(self.are_suppressed, tenant=batch[0].tenant, emails=[check.email for check in batch])

        try:
            await _run_batches(pending, look_up)
        finally:
            self._running.discard(key)
            if not pending:
                self._pending.pop(key, None)
