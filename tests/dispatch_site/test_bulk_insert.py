"""insert_many (COPY for large batches) stores exactly what bulk_create would, sets primary
keys like RETURNING, and takes part in the caller's transaction; `one_statement` gathers such
inserts into one statement behind a gate."""
import json
import uuid
from datetime import timedelta

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from dispatch_site.bulk_insert import insert_many
from sending.models import Message, Recipient
from webhooks.models import Event

pytestmark = pytest.mark.django_db(transaction=True)


def make_message(tenant, n, **extra):
    now = timezone.now()
    values = dict(
        id=uuid.uuid4(), tenant=tenant, message_id=f"m{n}-{uuid.uuid4().hex}@example.com", source="api",
        from_address="app@example.com", from_header='"Åsa, \\"the\\" sender" <app@example.com>',
        subject=f"Tab\there, quote ' \" backslash \\ newline\nand emoji ✉ {n}", to_addresses=[f"a{n}@example.org", "b,c@example.org"],
        cc_addresses=[], tags=["receipt", "é"], metadata={"order": n, "nested": {"k": [1, None, "x\\y"]}},
        body=bytes(range(256)) * 3 + b"\\.\n\r\x00", body_size_bytes=771, queued_at=now, expires_at=now + timedelta(days=1),
    )
    values.update(extra)
    return Message(**values)


def stored(model, pks, fields):
    return {row["pk"]: row for row in model.objects.filter(pk__in=pks).values("pk", *fields)}


def test_copy_stores_what_bulk_create_stores(tenant):
    fields = ["message_id", "from_header", "subject", "to_addresses", "cc_addresses", "tags", "metadata", "body",
              "queued_at", "expires_at", "template_ref", "credential_id", "status"]
    by_copy = insert_many([make_message(tenant, n) for n in range(20)], min_rows=1)
    by_insert = Message.objects.bulk_create([make_message(tenant, n) for n in range(20)])
    copied = stored(Message, [m.pk for m in by_copy], fields)
    inserted = stored(Message, [m.pk for m in by_insert], fields)
    assert len(copied) == len(inserted) == 20
    for a, b in zip(by_copy, by_insert):
        row_a, row_b = copied[a.pk], inserted[b.pk]
        row_a.pop("message_id"), row_b.pop("message_id"), row_a.pop("pk"), row_b.pop("pk")
        row_a["queued_at"] = row_b["queued_at"] = row_a["expires_at"] = row_b["expires_at"] = None
        assert row_a == row_b
    original = by_copy[3]
    assert bytes(copied[original.pk]["body"]) == original.body
    assert copied[original.pk]["subject"] == original.subject


def test_auto_primary_keys_are_set_in_order_like_returning(tenant):
    message = insert_many([make_message(tenant, 0)])[0]
    recipients = insert_many(
        [Recipient(tenant=tenant, message=message, email=f"r{n}@example.org", domain="example.org") for n in range(30)],
        min_rows=1)
    pks = [r.pk for r in recipients]
    assert all(pks) and pks == sorted(pks) and len(set(pks)) == 30
    assert dict(Recipient.objects.filter(pk__in=pks).values_list("pk", "email")) == {r.pk: r.email for r in recipients}
    # The sequence moved past them: the next ordinary INSERT does not collide.
    later = Recipient.objects.create(tenant=tenant, message=message, email="later@example.org", domain="example.org")
    assert later.pk > max(pks)


def test_rows_belong_to_the_callers_transaction(tenant):
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            insert_many([Event(tenant=tenant, type="sent", payload={"n": n}) for n in range(25)], min_rows=1)
            assert Event.objects.filter(tenant=tenant).count() == 25
            raise RuntimeError("roll back")
    assert Event.objects.filter(tenant=tenant).count() == 0


def test_a_bad_row_fails_the_whole_batch(tenant):
    duplicate = make_message(tenant, 1)
    rows = [make_message(tenant, n) for n in range(10)] + [make_message(tenant, 99, message_id=duplicate.message_id)]
    Message.objects.bulk_create([duplicate])
    from django.db import IntegrityError

    with pytest.raises(IntegrityError):
        with transaction.atomic():
            insert_many(rows, min_rows=1)
    assert Message.objects.filter(tenant=tenant).count() == 1


def test_a_single_row_uses_a_plain_insert(tenant):
    from django.test.utils import CaptureQueriesContext

    assert connection.vendor == "postgresql"
    with CaptureQueriesContext(connection) as queries:
        insert_many([make_message(tenant, 0)])
    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    assert len(inserts) == 1 and inserts[0].startswith("INSERT INTO \"sending_message\"")
    assert Message.objects.filter(tenant=tenant).count() == 1


def test_a_single_row_stores_what_bulk_create_stores(tenant):
    fields = ["from_header", "subject", "to_addresses", "cc_addresses", "tags", "metadata", "body", "template_ref",
              "credential_id", "status", "has_attachments", "bcc_count"]
    one = insert_many([make_message(tenant, 7)])[0]
    other = Message.objects.bulk_create([make_message(tenant, 7)])[0]
    row_one = stored(Message, [one.pk], fields)[one.pk]
    row_other = stored(Message, [other.pk], fields)[other.pk]
    row_one.pop("pk"), row_other.pop("pk")
    assert row_one == row_other
    assert bytes(row_one["body"]) == one.body
    assert one._state.adding is False


def test_a_single_row_of_an_auto_key_model_gets_its_key_from_the_sequence(tenant):
    message = insert_many([make_message(tenant, 0)])[0]
    first = insert_many([Recipient(tenant=tenant, message=message, email="a@example.org", domain="example.org")])[0]
    second = insert_many([Recipient(tenant=tenant, message=message, email="b@example.org", domain="example.org")])[0]
    assert first.pk and second.pk > first.pk
    assert Recipient.objects.get(pk=first.pk).email == "a@example.org"
    # Defaults and auto_now_add were applied as bulk_create applies them.
    row = Recipient.objects.get(pk=second.pk)
    assert row.status == Recipient.Status.QUEUED


def test_a_single_duplicate_row_raises_djangos_integrity_error_and_rolls_back(tenant):
    from django.db import IntegrityError

    existing = Message.objects.bulk_create([make_message(tenant, 1)])[0]
    with pytest.raises(IntegrityError):
        with transaction.atomic():
            insert_many([make_message(tenant, 2)])
            insert_many([make_message(tenant, 3, message_id=existing.message_id)])
    assert Message.objects.filter(tenant=tenant).count() == 1


# --- one_statement: the submission path's rows in one statement ------------------------------
def gathered(tenant, count, **execute):
    """Messages, each with two recipients and an event, gathered and executed in one statement."""
    from dispatch_site.bulk_insert import on_commit, one_statement

    ran = []
    with one_statement() as statement:
        messages = insert_many([make_message(tenant, n) for n in range(count)])
        recipients = insert_many([Recipient(tenant=tenant, message=m, email=f"{m.pk.hex[:8]}-{k}@example.org",
                                            domain="example.org") for m in messages for k in range(2)])
        events = insert_many([Event(tenant=tenant, type="sent", payload={"n": n, "at": timezone.now()}) for n in range(count)])
        on_commit(lambda: ran.append(True))
        assert not ran and not Message.objects.filter(tenant=tenant).exists()  # nothing runs before execute
    return statement.execute(**execute), messages, recipients, events, ran


@pytest.mark.parametrize("count", [1, 5, 100])
def test_one_statement_stores_what_bulk_create_stores(tenant, count):
    fields = ["from_header", "subject", "to_addresses", "cc_addresses", "tags", "metadata", "body", "template_ref",
              "credential_id", "status", "has_attachments", "bcc_count", "body_size_bytes", "header_message_id",
              "queued_at", "expires_at", "delivered_at"]
    (stored_ok, _), messages, recipients, events, ran = gathered(tenant, count)
    assert stored_ok and ran == [True]
    others = Message.objects.bulk_create([make_message(tenant, n) for n in range(count)])
    for one, other in zip(messages, others):
        row_one, row_other = stored(Message, [one.pk], fields)[one.pk], stored(Message, [other.pk], fields)[other.pk]
        for row in (row_one, row_other):
            row.pop("pk"), row.pop("queued_at"), row.pop("expires_at")
        assert row_one == row_other
        row = Message.objects.get(pk=one.pk)
        assert (bytes(row.body), row.queued_at, row.subject) == (one.body, one.queued_at, one.subject)
    # Auto keys in the order of the objects, as RETURNING gives them; defaults applied.
    pks = [r.pk for r in recipients]
    assert all(pks) and pks == sorted(pks) and not any(r._state.adding for r in recipients)
    assert dict(Recipient.objects.filter(pk__in=pks).values_list("pk", "email")) == {r.pk: r.email for r in recipients}
    assert set(Recipient.objects.filter(pk__in=pks).values_list("status", "attempts", "effects_pending")) == {("queued", 0, False)}
    # A JSONField's nested values go through its encoder, as bulk_create's do.
    assert Event.objects.get(pk=events[0].pk).payload["at"] == json.loads(json.dumps(events[0].payload, cls=DjangoJSONEncoder))["at"]


def test_a_gate_that_returns_no_row_inserts_nothing_and_drops_the_callbacks(tenant):
    (stored_ok, probed), messages, recipients, _, ran = gathered(
        tenant, 3, gate="SELECT 1 WHERE %(open)s", probe="(SELECT %(answer)s::int)", params={"open": False, "answer": 42})
    assert (stored_ok, probed) == (False, 42)
    assert not ran and recipients[0].pk is None
    assert not Message.objects.filter(tenant=tenant).exists() and not Event.objects.filter(tenant=tenant).exists()
    (stored_ok, _), *_ = gathered(tenant, 3, gate="SELECT 1 WHERE %(open)s", params={"open": True})
    assert stored_ok and Message.objects.filter(tenant=tenant).count() == 3


def test_a_bad_row_in_one_statement_raises_djangos_integrity_error_and_stores_nothing(tenant):
    from django.db import IntegrityError

    from dispatch_site.bulk_insert import one_statement

    existing = Message.objects.bulk_create([make_message(tenant, 1)])[0]
    with one_statement() as statement:
        insert_many([make_message(tenant, 2), make_message(tenant, 3, message_id=existing.message_id)])
        insert_many([Event(tenant=tenant, type="sent", payload={})])
    with pytest.raises(IntegrityError):
        statement.execute()
    assert Message.objects.filter(tenant=tenant).count() == 1 and not Event.objects.filter(tenant=tenant).exists()
