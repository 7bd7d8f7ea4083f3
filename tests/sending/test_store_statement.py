"""Storing a submission in one statement (PostgreSQL): the quota reservation, the rows, their
events and webhook deliveries commit together or not at all, and what is stored is what the
transactional path (the one other databases use) stores."""
import threading
from unittest import mock

import pytest
from django.db import IntegrityError, connection

from dispatch_site import crypto
from dispatch_site.errors import QuotaExceeded
from sending import services
from sending.models import IdempotencyKey, Message, Recipient, Suppression
from tenants import ratelimit
from tenants.models import UsageCounter
from webhooks.models import Delivery, Endpoint, Event

from .conftest import make_verified_domain

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement store is PostgreSQL's")

AWKWARD_SUBJECT = "Tab\there, quote ' \" backslash \\ \\x41 $1 %s %(x)s {} and emoji ✉ Åsa"
RAW = (
    "From: \"Åsa, \\\"the\\\" sender\" <sender@example.com>\r\nTo: a@example.org, b@example.org\r\n"
    "Cc: c@example.org\r\nMessage-ID: <client-1@example.com>\r\nSubject: =?utf-8?q?caf=C3=A9_=E2=9C=89?=\r\n"
    'X-Dispatch-Tags: ["receipt", "é", "q\\"uote"]\r\nX-Dispatch-Metadata: {"order": 7, "note": "x\\\\y \'z\'", "none": null}\r\n'
    "Content-Type: text/plain; charset=utf-8\r\n\r\nHello \\x00 world\r\n"
).encode()


def set_quota(tenant, quota):
    plan = tenant.plan
    plan.monthly_quota, plan.rate_limit_per_minute = quota, 10_000
    plan.save()


def api_request(**overrides):
    values = dict(from_="Sender <sender@example.com>", to=["a@example.org", "gone@example.org"], cc=["c@example.org"],
                  bcc=["d@example.org"], subject=AWKWARD_SUBJECT, text_body="Hi", tags=["t1", "ü"],
                  metadata={"k": "v'\"\\", "n": 1.5, "b": True, "z": None}, template_id=None)
    values.update(overrides)
    return services.SendRequest(**values)


def prepared_items(tenant):
    lookups = services.Lookups(tenant)
    return [
        services.prepare_api_message(tenant=tenant, request=api_request(), lookups=lookups),
        services.prepare_raw_message(tenant=tenant, mail_from="bounce@example.com",
                                     rcpt_tos=["a@example.org", "b@example.org", "c@example.org", "x@example.net"],
                                     raw=RAW, lookups=lookups),
    ]


def stored_rows(tenant):
    """Every row the submissions left, without what differs between two submissions of the
    same messages (ids, Message-IDs, instants), with the relations between them checked here."""
    messages = []
    for message in Message.objects.filter(tenant=tenant):
        row = {f.attname: getattr(message, f.attname) for f in Message._meta.concrete_fields}
        assert crypto.decrypt(bytes(row.pop("body")), message.body_associated_data)
        assert row.pop("expires_at") - row["queued_at"] == message.expires_at - message.queued_at
        recipients = []
        for recipient in Recipient.objects.filter(message=message).order_by("email"):
            r = {f.attname: getattr(recipient, f.attname) for f in Recipient._meta.concrete_fields}
            assert r.pop("next_attempt_at") == message.queued_at
            assert r.pop("enqueued_at") == (message.queued_at if r["status"] == "queued" else None)
            for volatile in ("id", "message_id"):
                r.pop(volatile)
            recipients.append(r)
        for volatile in ("id", "message_id", "queued_at"):
            row.pop(volatile)
        messages.append((row, recipients))
    events = []
    for event in Event.objects.filter(tenant=tenant):
        payload = dict(event.payload)
        assert payload.pop("timestamp").endswith("Z")
        assert Message.objects.filter(pk=payload.pop("email_id"), message_id=payload.pop("message_id")).exists()
        deliveries = list(Delivery.objects.filter(event=event).values())
        for delivery in deliveries:
            assert delivery.pop("webhook_id") == event.webhook_id
            assert delivery.pop("next_attempt_at") == delivery.pop("enqueued_at") == delivery.pop("created_at") == event.created_at
            for volatile in ("id", "event_id"):
                delivery.pop(volatile)
        events.append((event.type, payload, deliveries))
    counter = UsageCounter.objects.filter(tenant=tenant).values("emails_sent", "overage", "delivered").first()
    return sorted(messages, key=repr), sorted(events, key=repr), counter


def submit_both_ways(make_tenant, make_credential, monkeypatch, one_statement):
    tenant = make_tenant()
    make_verified_domain(tenant, "example.com")
    Suppression.objects.create(tenant=tenant, email="gone@example.org")
    Endpoint.objects.create(tenant=tenant, url="https://hooks.example.net/a", events=["sent"], secret_encrypted=b"x")
    Endpoint.objects.create(tenant=tenant, url="https://hooks.example.net/b", events=["suppressed", "sent"],
                            secret_encrypted=b"x")
    Endpoint.objects.create(tenant=tenant, url="https://hooks.example.net/off", events=["sent"], secret_encrypted=b"x",
                            enabled=False)
    credential = make_credential(tenant)
    if not one_statement:
        monkeypatch.setattr(services, "_store_in_one_statement", services._store_in_transaction)
    results = services._store(tenant=tenant, items=prepared_items(tenant), credential=credential)
    results.append(services.submit(tenant=tenant, request=api_request(to=["i@example.org"]), credential=credential,
                                   idempotency_key="k-1", request_hash="h" * 64))
    return tenant, results, IdempotencyKey.objects.get(tenant=tenant)


@pytest.mark.django_db
def test_the_statement_stores_what_the_transactional_path_stores(make_tenant, make_credential, monkeypatch):
    with mock.patch("webhooks.services.enqueue"), mock.patch.object(services, "enqueue_delivery"):
        tenant_a, results_a, key_a = submit_both_ways(make_tenant, make_credential, monkeypatch, one_statement=True)
        monkeypatch.undo()
        tenant_b, results_b, key_b = submit_both_ways(make_tenant, make_credential, monkeypatch, one_statement=False)

    def comparable(tenant):
        messages, events, counter = stored_rows(tenant)
        for row, recipients in messages:
            assert row.pop("tenant_id") == tenant.pk
            assert row.pop("credential_id") is not None
            for r in recipients:
                assert r.pop("tenant_id") == tenant.pk
        for _, payload, deliveries in events:
            assert payload.pop("tenant_id") == str(tenant.pk)
            for delivery in deliveries:
                assert delivery.pop("tenant_id") == tenant.pk
                assert Endpoint.objects.get(pk=delivery.pop("endpoint_id")).tenant_id == tenant.pk
        return sorted(messages, key=repr), sorted(events, key=repr), counter

    stored_a, stored_b = comparable(tenant_a), comparable(tenant_b)
    assert stored_a == stored_b
    messages, events, counter = stored_a
    assert len(messages) == 3 and len(events) == 11  # 10 recipients sent, 1 suppressed
    assert counter == {"emails_sent": 10, "overage": 0, "delivered": 0}  # the month's row, created by the first send
    assert [m[0]["subject"] for m in messages].count(AWKWARD_SUBJECT) == 2
    # Each sent event to both enabled endpoints, the suppressed one to the one subscribed.
    assert sum(len(deliveries) for _, _, deliveries in events) == 10 * 2 + 1
    # What callers get back is the same too (ids aside): the API response and the SMTP reply's objects.
    for a, b in zip(results_a, results_b):
        assert [(r.email, r.status, r.kind) for r in a.recipients] == [(r.email, r.status, r.kind) for r in b.recipients]
        assert all(r.pk and not r._state.adding for r in a.recipients)
        assert a.response["message"] == b.response["message"]
        assert Recipient.objects.filter(pk__in=[r.pk for r in a.recipients], message_id=a.message.pk).count() == len(a.recipients)
    # Every column holds exactly the object's value (instants to the microsecond, the body's bytes).
    for result in results_a:
        for obj in [result.message, *result.recipients]:
            row = type(obj).objects.get(pk=obj.pk)
            for f in type(obj)._meta.concrete_fields:
                value = getattr(row, f.attname)
                assert (bytes(value) if isinstance(value, memoryview) else value) == getattr(obj, f.attname), f.name
    assert (key_a.request_hash, key_a.status_code) == (key_b.request_hash, key_b.status_code)
    assert key_a.response == results_a[-1].response


def one_message(tenant, to=("a@example.org",)):
    return services.prepare_api_message(tenant=tenant, request=api_request(to=list(to), cc=[], bcc=[]),
                                        lookups=services.Lookups(tenant))


@pytest.mark.django_db
def test_a_refused_quota_stores_counts_and_enqueues_nothing(make_tenant, django_capture_on_commit_callbacks):
    tenant = make_tenant()
    make_verified_domain(tenant, "example.com")
    Endpoint.objects.create(tenant=tenant, url="https://hooks.example.net/a", events=["sent"], secret_encrypted=b"x")
    set_quota(tenant, 2)
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(QuotaExceeded) as refused:
        services._store(tenant=tenant, items=[one_message(tenant, to=["a@example.org", "b@example.org", "c@example.org"])])
    assert str(refused.value) == "Monthly quota exceeded (0/2). Enable overage or upgrade plan."
    assert not callbacks
    assert not Message.objects.filter(tenant=tenant).exists() and not Event.objects.filter(tenant=tenant).exists()
    assert not UsageCounter.objects.filter(tenant=tenant, emails_sent__gt=0).exists()
    assert ratelimit.peek(tenant=tenant).used == 0
    # What fits is still accepted, and counted once.
    services._store(tenant=tenant, items=[one_message(tenant, to=["a@example.org", "b@example.org"])])
    with pytest.raises(QuotaExceeded, match=r"\(2/2\)"):
        services._store(tenant=tenant, items=[one_message(tenant)])
    assert UsageCounter.objects.get(tenant=tenant).emails_sent == 2
    assert Delivery.objects.filter(tenant=tenant).count() == 2


@pytest.mark.django_db
def test_a_batch_over_the_quota_accepts_the_messages_that_fit(make_tenant):
    tenant = make_tenant()
    make_verified_domain(tenant, "example.com")
    set_quota(tenant, 3)
    items = [one_message(tenant, to=["a@example.org", "b@example.org"]), one_message(tenant, to=["c@example.org", "d@example.org"]),
             one_message(tenant)]
    outcomes = services._store(tenant=tenant, items=items)
    assert [type(o).__name__ for o in outcomes] == ["SubmitResult", "QuotaExceeded", "SubmitResult"]
    assert UsageCounter.objects.get(tenant=tenant).emails_sent == 3
    assert Message.objects.filter(tenant=tenant).count() == 2
    assert ratelimit.peek(tenant=tenant).used == 3


@pytest.mark.django_db(transaction=True)
def test_a_failing_statement_reserves_and_stores_nothing(make_tenant, monkeypatch):
    tenant = make_tenant()
    make_verified_domain(tenant, "example.com")
    first = services._store(tenant=tenant, items=[one_message(tenant)])[0]
    enqueued = []
    monkeypatch.setattr(services, "enqueue_delivery", enqueued.append)
    clash = one_message(tenant, to=["b@example.org", "c@example.org"])
    clash.message_id = first.message.message_id  # unique: the INSERT fails inside the statement
    with pytest.raises(IntegrityError):
        services._store(tenant=tenant, items=[one_message(tenant, to=["d@example.org"]), clash])
    assert UsageCounter.objects.get(tenant=tenant).emails_sent == 1
    assert ratelimit.peek(tenant=tenant).used == 1
    assert Message.objects.filter(tenant=tenant).count() == 1 and Recipient.objects.filter(tenant=tenant).count() == 1
    assert Event.objects.filter(tenant=tenant).count() == 1
    assert not enqueued


@pytest.mark.django_db
def test_a_failing_statement_inside_a_transaction_leaves_it_usable(make_tenant):
    tenant = make_tenant()
    make_verified_domain(tenant, "example.com")
    first = services._store(tenant=tenant, items=[one_message(tenant)])[0]
    clash = one_message(tenant)
    clash.message_id = first.message.message_id
    with pytest.raises(IntegrityError):
        services._store(tenant=tenant, items=[clash])
    assert UsageCounter.objects.get(tenant=tenant).emails_sent == 1  # the test's own transaction still answers


@pytest.mark.django_db(transaction=True)
def test_two_tenants_batches_stored_at_once_are_counted_exactly(make_tenant):
    tenants = [make_tenant(), make_tenant()]
    for tenant in tenants:
        make_verified_domain(tenant, "example.com")
        set_quota(tenant, 10_000)
    batches = {t.pk: [[one_message(t, to=[f"r{n}@example.org", f"s{n}@example.net"]) for n in range(5)] for _ in range(8)]
               for t in tenants}
    barrier, errors = threading.Barrier(4), []

    def store(tenant, share):
        try:
            barrier.wait()
            for items in share:
                assert all(isinstance(o, services.SubmitResult) for o in services._store(tenant=tenant, items=items))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=store, args=(t, batches[t.pk][half::2])) for t in tenants for half in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for tenant in tenants:
        assert UsageCounter.objects.get(tenant=tenant).emails_sent == 8 * 5 * 2
        assert Message.objects.filter(tenant=tenant).count() == 8 * 5
        assert Recipient.objects.filter(tenant=tenant, message__tenant=tenant).count() == 8 * 5 * 2
        assert Event.objects.filter(tenant=tenant, payload__tenant_id=str(tenant.pk)).count() == 8 * 5 * 2


@pytest.mark.django_db
def test_a_batch_too_large_for_one_jsonb_value_is_stored_in_a_transaction(make_tenant, monkeypatch,
                                                                         django_capture_on_commit_callbacks):
    """PostgreSQL refuses a jsonb value over 256 MB: bodies beyond ONE_STATEMENT_MAX_BODY_BYTES
    (together) go through the transactional path, stored and counted the same."""
    tenant = make_tenant()
    make_verified_domain(tenant, "example.com")
    items = [one_message(tenant, to=[f"big{i}@example.org"]) for i in range(3)]
    monkeypatch.setattr(services, "ONE_STATEMENT_MAX_BODY_BYTES", sum(len(p.raw) for p in items) // 2)
    one_statement = mock.Mock(side_effect=AssertionError("not for this batch"))
    monkeypatch.setattr(services, "_store_in_one_statement", one_statement)
    with mock.patch.object(services, "enqueue_delivery") as enqueued, django_capture_on_commit_callbacks(execute=True):
        results = services._store(tenant=tenant, items=items)
    assert [r.recipients[0].email for r in results] == [f"big{i}@example.org" for i in range(3)]
    assert Recipient.objects.filter(tenant=tenant, status="queued").count() == 3
    assert UsageCounter.objects.get(tenant=tenant).emails_sent == 3
    assert sorted(enqueued.call_args.args[0]) == sorted(r.recipients[0].pk for r in results)
    assert not one_statement.called
    # Within the limit, the same batch takes the one statement.
    monkeypatch.setattr(services, "ONE_STATEMENT_MAX_BODY_BYTES", 64 * 1024 * 1024)
    with pytest.raises(AssertionError, match="not for this batch"):
        services._store(tenant=tenant, items=[one_message(tenant, to=["small@example.org"])])
