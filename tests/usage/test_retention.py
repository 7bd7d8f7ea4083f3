"""Log retention: expired log entries go in small batches; usage counters stay."""
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from sending.models import DeliveryAttempt, Message, Recipient
from sending.retention import expired_messages_delete
from sending.services import SendRequest, submit
from tenants.models import UsageCounter


def send(tenant, *, to=("a@example.org", "b@example.org")):
    result = submit(tenant=tenant, request=SendRequest(from_="sender@example.com", to=list(to), subject="Hi", text_body="Hi"))
    return result.message


def deliver(message):
    for recipient in Recipient.objects.filter(message=message):
        DeliveryAttempt.objects.create(tenant_id=recipient.tenant_id, recipient=recipient, outcome="delivered", response_code=250)
    Recipient.objects.filter(message=message).update(status=Recipient.Status.DELIVERED, delivered_at=timezone.now())


def expire(message, *, days_ago=1):
    Message.objects.filter(pk=message.pk).update(expires_at=timezone.now() - timedelta(days=days_ago))


@pytest.fixture
def delivered_messages(tenant, verified_domain):
    def make(count):
        messages = [send(tenant) for _ in range(count)]
        for message in messages:
            deliver(message)
        return messages

    return make


def test_expired_messages_are_deleted_with_their_recipients_and_attempts(tenant, delivered_messages):
    old, kept = delivered_messages(2)
    expire(old)
    assert expired_messages_delete() == 1
    assert list(Message.objects.values_list("id", flat=True)) == [kept.id]
    assert not Recipient.objects.filter(message_id=old.id).exists()
    assert DeliveryAttempt.objects.count() == 2  # kept's two recipients
    assert Recipient.objects.filter(message_id=kept.id).count() == 2


def test_expiry_follows_the_plans_retention_at_send_time(tenant, verified_domain):
    message = send(tenant)
    assert message.expires_at == message.queued_at + timedelta(days=tenant.plan.log_retention_days)
    deliver(message)
    assert expired_messages_delete(now=message.expires_at) == 0  # not yet: strictly after
    assert expired_messages_delete(now=message.expires_at + timedelta(seconds=1)) == 1


def test_usage_counters_survive_the_deletion(api, tenant, delivered_messages):
    for message in delivered_messages(3):
        expire(message)
    before = UsageCounter.objects.get(tenant=tenant)
    assert expired_messages_delete() == 3
    after = UsageCounter.objects.get(tenant=tenant)
    assert after.emails_sent == before.emails_sent == 6
    usage = api.get(f"/api/v1/dispatch/tenants/{tenant.id}/usage").json()["data"]
    assert usage["emails_sent"] == 6


def test_messages_still_being_delivered_are_kept_until_done(tenant, verified_domain):
    message = send(tenant)
    expire(message)
    Recipient.objects.filter(message=message, email="a@example.org").update(status=Recipient.Status.DELIVERED)
    Recipient.objects.filter(message=message, email="b@example.org").update(status=Recipient.Status.DEFERRED)
    assert expired_messages_delete() == 0
    Recipient.objects.filter(message=message).update(status=Recipient.Status.BOUNCED)
    assert expired_messages_delete() == 1


def test_deletion_runs_in_small_transactions(tenant, delivered_messages):
    for message in delivered_messages(5):
        expire(message)
    with CaptureQueriesContext(connection) as queries:
        assert expired_messages_delete(batch_size=2) == 5
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('DELETE FROM "sending_message"')]
    assert len(deletes) == 3  # 2 + 2 + 1


def test_one_run_is_bounded_by_max_batches(tenant, delivered_messages):
    for message in delivered_messages(5):
        expire(message)
    assert expired_messages_delete(batch_size=2, max_batches=2) == 4
    assert Message.objects.count() == 1
    assert expired_messages_delete(batch_size=2) == 1


def test_a_suppression_learned_from_an_expired_message_is_kept(tenant, delivered_messages):
    from sending.models import Suppression
    from sending.suppressions import suppression_add

    (message,) = delivered_messages(1)
    suppression_add(tenant=tenant, email="a@example.org", reason="hard bounce", source="bounce", source_message=message)
    expire(message)
    expired_messages_delete()
    suppression = Suppression.objects.get(tenant=tenant, email="a@example.org")
    assert suppression.source_message_id is None


def test_the_beat_task_deletes_expired_entries(tenant, delivered_messages):
    from dispatch_site.beat import BEAT_SCHEDULE
    from sending.tasks import delete_expired_emails

    old, kept = delivered_messages(2)
    expire(old)
    assert delete_expired_emails() == 1
    assert list(Message.objects.values_list("id", flat=True)) == [kept.id]
    assert any(e["task"] == "sending.tasks.delete_expired_emails" for e in BEAT_SCHEDULE.values())


def test_idempotency_keys_are_pruned_by_a_beat_task(tenant):
    from sending.models import IdempotencyKey
    from sending.tasks import prune_idempotency_keys

    old = IdempotencyKey.objects.create(tenant=tenant, key="old", request_hash="x", response={}, status_code=200)
    IdempotencyKey.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=25))
    IdempotencyKey.objects.create(tenant=tenant, key="new", request_hash="x", response={}, status_code=200)
    assert prune_idempotency_keys() == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new"]
