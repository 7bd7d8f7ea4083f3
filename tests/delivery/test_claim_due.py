"""engine.claim_due (one statement on PostgreSQL): which rows it takes, what it leases, and the
objects it returns (as load_recipients builds them)."""
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from sending.delivery import engine
from sending.models import Recipient

pytestmark = pytest.mark.django_db
S = Recipient.Status


def test_it_leases_due_rows_and_returns_them_with_message_and_tenant(queue_message, tenant):
    message, [first, second] = queue_message("a@dest.test", "b@dest.test")
    with CaptureQueriesContext(connection) as queries:
        lease, claimed = engine.claim_due()
    assert len(queries.captured_queries) == 1
    assert sorted(r.pk for r in claimed) == sorted([first.pk, second.pk])
    for recipient in claimed:
        stored = Recipient.objects.get(pk=recipient.pk)
        assert (stored.status, stored.lease_until) == (S.SENDING, lease)
        assert (recipient.status, recipient.lease_until) == (S.SENDING, lease)
        assert recipient.email == stored.email and recipient.next_attempt_at == stored.next_attempt_at
    # One message object per message, its tenant loaded, its body left for later.
    assert claimed[0].message is claimed[1].message and claimed[0].message.pk == message.pk
    assert claimed[0].message.tenant.pk == tenant.pk and claimed[0].tenant is claimed[0].message.tenant
    assert "body" in claimed[0].message.get_deferred_fields()
    assert "captured_message" in claimed[0].get_deferred_fields()
    assert claimed[0].message.subject == message.subject


def test_it_skips_rows_not_due_leased_or_awaiting_effects_and_takes_expired_leases(queue_message):
    now = timezone.now()
    _, [later, leased, pending, expired, due] = queue_message(
        "later@dest.test", "leased@dest.test", "pending@dest.test", "expired@dest.test", "due@dest.test")
    Recipient.objects.filter(pk=later.pk).update(next_attempt_at=now + timedelta(minutes=5))
    Recipient.objects.filter(pk=leased.pk).update(status=S.SENDING, lease_until=now + timedelta(minutes=5))
    Recipient.objects.filter(pk=pending.pk).update(status=S.DEFERRED, effects_pending=True)
    Recipient.objects.filter(pk=expired.pk).update(status=S.SENDING, lease_until=now - timedelta(seconds=1))
    _, claimed = engine.claim_due()
    assert sorted(r.email for r in claimed) == ["due@dest.test", "expired@dest.test"]


def test_it_takes_the_oldest_due_first_up_to_the_limit(queue_message):
    _, recipients = queue_message(*[f"r{i}@dest.test" for i in range(5)])
    now = timezone.now()
    for age, recipient in enumerate(recipients):
        Recipient.objects.filter(pk=recipient.pk).update(next_attempt_at=now - timedelta(minutes=age))
    _, claimed = engine.claim_due(limit=2)
    assert sorted(r.email for r in claimed) == ["r3@dest.test", "r4@dest.test"]
    assert Recipient.objects.filter(status=S.SENDING).count() == 2
    _, rest = engine.claim_due(limit=10)
    assert len(rest) == 3
    assert engine.claim_due()[1] == []
