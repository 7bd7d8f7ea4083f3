"""Group commit: submissions of one tenant that arrive together are stored together, and each
still gets its own outcome."""
import asyncio
import threading
from types import SimpleNamespace

import pytest

from dispatch_site.errors import DomainNotVerified
from smtp_gateway import batching
from smtp_gateway.batching import SubmissionBatcher


class ThreadRunner:
    async def run(self, fn, *args):
        return await asyncio.to_thread(fn, *args)


class RecordingStore:
    """Stands in for submit_raw_many: records batch sizes; refuses raws that say so."""

    def __init__(self):
        self.batches = []
        self.release = threading.Event()

    def __call__(self, tenant, credential, items):
        self.release.wait(5)
        self.batches.append([item["raw"] for item in items])
        return [DomainNotVerified() if item["raw"] == b"refuse" else f"stored {item['raw'].decode()}" for item in items]


TENANT = SimpleNamespace(pk=1)
CREDENTIAL = SimpleNamespace(pk=7)


async def submit(batcher, raw, tenant=TENANT):
    return await batcher.submit(tenant=tenant, credential=CREDENTIAL, mail_from="a@example.com",
                                rcpt_tos=["b@example.net"], raw=raw)


def test_submissions_that_arrive_together_share_a_batch_with_their_own_outcomes():
    store = RecordingStore()
    busy = [f"m{i}".encode() for i in range(batching.MAX_IN_FLIGHT)]

    async def scenario():
        batcher = SubmissionBatcher(db=ThreadRunner(), store_many=store)
        tasks = []
        for raw in busy:  # each starts a batch of its own, which then blocks in the store
            tasks.append(asyncio.create_task(submit(batcher, raw)))
            await asyncio.sleep(0.05)
        tasks += [asyncio.create_task(submit(batcher, raw)) for raw in (b"x0", b"refuse", b"x2", b"x3")]
        await asyncio.sleep(0.05)
        store.release.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    outcomes = asyncio.run(scenario())
    n = len(busy)
    assert outcomes[:n] == [f"stored {raw.decode()}" for raw in busy]
    assert outcomes[n] == "stored x0"
    assert isinstance(outcomes[n + 1], DomainNotVerified)
    assert outcomes[n + 2:] == ["stored x2", "stored x3"]
    # Every allowed batch was busy, so the four that came meanwhile went in one batch.
    assert sorted(len(b) for b in store.batches) == [1] * n + [4]


def test_a_lone_submission_is_stored_at_once_and_tenants_are_never_mixed():
    store = RecordingStore()
    store.release.set()

    async def scenario():
        batcher = SubmissionBatcher(db=ThreadRunner(), store_many=store)
        other = SimpleNamespace(pk=2)
        results = await asyncio.gather(submit(batcher, b"x"), submit(batcher, b"y", tenant=other))
        return results, batcher

    results, batcher = asyncio.run(scenario())
    assert results == ["stored x", "stored y"]
    assert sorted(store.batches) == [[b"x"], [b"y"]]
    assert not batcher._pending and not batcher._in_flight


def test_a_failed_batch_answers_every_waiting_submission():
    def broken(tenant, credential, items):
        raise RuntimeError("database went away")

    async def scenario():
        batcher = SubmissionBatcher(db=ThreadRunner(), store_many=broken)
        return await asyncio.gather(submit(batcher, b"a"), submit(batcher, b"b"), return_exceptions=True)

    assert all(isinstance(outcome, RuntimeError) for outcome in asyncio.run(scenario()))


@pytest.mark.django_db(transaction=True)  # the real thread pool and real commits
def test_concurrent_smtp_sessions_of_one_tenant_are_all_stored(start_gateway, smtp_starttls, tenant, credential,
                                                              verified_domain):
    from sending.models import Message

    from .test_submission import simple_message

    verified_domain(tenant, "example.com")
    start_gateway()
    clients = [smtp_starttls(login=credential) for _ in range(8)]
    errors = []

    def send(client, number):
        try:
            for turn in range(5):
                client.sendmail("alice@example.com", ["bob@example.net"], simple_message(subject=f"{number}-{turn}"))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(c, n)) for n, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert Message.objects.filter(tenant=tenant).count() == 40


# --- RCPT suppression checks ----------------------------------------------------------------------
class KwargsThreadRunner:
    async def run(self, fn, /, *args, **kwargs):
        return await asyncio.to_thread(fn, *args, **kwargs)


class RecordingLookup:
    """Stands in for are_suppressed: records the addresses of each query; blocks until released."""

    def __init__(self, suppressed, fail=False):
        self.suppressed, self.fail = suppressed, fail
        self.queries = []
        self.release = threading.Event()

    def __call__(self, *, tenant, emails):
        self.release.wait(5)
        self.queries.append((tenant.pk, list(emails)))
        if self.fail:
            raise RuntimeError("database down")
        return [email in self.suppressed for email in emails]


def run_checks(lookup, checks, *, wait_first=True):
    async def scenario():
        from smtp_gateway.batching import SuppressionChecks

        gate = SuppressionChecks(db=KwargsThreadRunner(), are_suppressed=lookup)
        tasks = [asyncio.create_task(gate.is_suppressed(tenant=checks[0][0], email=checks[0][1]))]
        await asyncio.sleep(0.05)  # the first check is now running (blocked in the lookup)
        tasks += [asyncio.create_task(gate.is_suppressed(tenant=t, email=e)) for t, e in checks[1:]]
        await asyncio.sleep(0.05)
        lookup.release.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    return asyncio.run(scenario())


def test_rcpt_checks_that_arrive_together_are_one_query_with_their_own_answers():
    lookup = RecordingLookup(suppressed={"gone@example.org"})
    emails = ["a@example.org", "gone@example.org", "b@example.org", "gone@example.org"]
    answers = run_checks(lookup, [(TENANT, e) for e in emails])
    assert answers == [False, True, False, True]
    assert lookup.queries == [(1, ["a@example.org"]), (1, ["gone@example.org", "b@example.org", "gone@example.org"])]


def test_rcpt_checks_of_another_tenant_never_share_a_query():
    other = SimpleNamespace(pk=2)
    lookup = RecordingLookup(suppressed=set())
    run_checks(lookup, [(TENANT, "a@example.org"), (other, "b@example.org"), (TENANT, "c@example.org")])
    assert sorted(lookup.queries) == [(1, ["a@example.org"]), (1, ["c@example.org"]), (2, ["b@example.org"])]


def test_a_failed_rcpt_query_reaches_every_waiting_check():
    lookup = RecordingLookup(suppressed=set(), fail=True)
    answers = run_checks(lookup, [(TENANT, "a@example.org"), (TENANT, "b@example.org"), (TENANT, "c@example.org")])
    assert all(isinstance(a, RuntimeError) for a in answers)
