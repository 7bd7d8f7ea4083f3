"""Recorder.flush: the worker's own recorded outcomes get their attempt row and effects once,
only while their effects are still pending, and never a row another transaction holds."""
import time

import psycopg
import pytest
from django.db import connection

from sending.delivery import engine, recording
from sending.models import DeliveryAttempt, Recipient
from tests.delivery.conftest import make_message
from webhooks.models import Event

DELIVERED = engine.Result("delivered", 250, "2.0.0", "2.0.0 Ok: queued as 4Fxyz", "mx.dest.test", "127.0.0.1")


@pytest.fixture
def recorded(transactional_db, tenant, signing_domain, monkeypatch):
    """Three recipients claimed and their outcomes recorded, effects not flushed yet."""
    monkeypatch.setattr(recording, "FLUSH_EVERY", 10**9)
    monkeypatch.setattr(recording, "FLUSH_SECONDS", 10**9)
    make_message(tenant, ["a@dest.test", "b@dest.test", "c@dest.test"])
    lease, recipients = engine.claim_due()
    recorder = recording.Recorder()
    for recipient in sorted(recipients, key=lambda r: r.id):
        assert recorder.record(recipient, DELIVERED, time.monotonic() - 0.25, lease=lease)
    return recorder, sorted(recipients, key=lambda r: r.id)


def test_the_attempt_row_carries_the_outcome_of_the_reply(tenant, signing_domain, transactional_db, monkeypatch):
    monkeypatch.setattr(recording, "FLUSH_EVERY", 10**9)
    make_message(tenant, ["full@dest.test"])
    lease, (recipient,) = engine.claim_due()
    reply = engine.Result("bounced", 552, "5.2.2", "5.2.2 mailbox full", "mx.dest.test", "2001:db8::" + "1" * 60)
    recorder = recording.Recorder()
    recorder.record(recipient, reply, time.monotonic() - 0.5, lease=lease)
    recorder.flush()

    attempt = DeliveryAttempt.objects.get(recipient=recipient)
    assert attempt.id is not None and attempt.tenant_id == tenant.id
    assert (attempt.outcome, attempt.response_code, attempt.enhanced_status) == ("bounced", 552, "5.2.2")
    assert attempt.response_text == "5.2.2 mailbox full" and attempt.mx_host == "mx.dest.test"
    assert attempt.remote_ip == reply.remote_ip[:45]
    assert 500 <= attempt.duration_ms < 5000 and attempt.started_at <= recipient.bounced_at
    row = Recipient.objects.get(pk=recipient.pk)
    assert not row.effects_pending and row.lease_until is None


def test_a_flush_applies_only_the_effects_still_pending(recorded):
    recorder, (a, b, c) = recorded
    # The sweeper already replayed b's effects (a slow worker): the flag is cleared, b is not ours.
    Recipient.objects.filter(pk=b.pk).update(effects_pending=False, lease_until=None)
    recorder.flush()

    assert set(DeliveryAttempt.objects.values_list("recipient_id", flat=True)) == {a.id, c.id}
    assert {e.payload["recipient"] for e in Event.objects.filter(type="delivered")} == {a.email, c.email}
    assert not Recipient.objects.filter(effects_pending=True).exists()


def test_a_flush_skips_a_row_another_transaction_holds(recorded):
    recorder, (a, b, c) = recorded
    params = connection.get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k not in ("cursor_factory", "context")}) as other:
        other.execute(f"SELECT id FROM {Recipient._meta.db_table} WHERE id = %s FOR UPDATE", [b.id])
        recorder.flush()  # does not wait for the lock
        other.rollback()

    assert set(DeliveryAttempt.objects.values_list("recipient_id", flat=True)) == {a.id, c.id}
    held = Recipient.objects.get(pk=b.pk)
    assert held.effects_pending and held.lease_until is not None  # left for whoever holds it, or the sweeper
