"""The delivery engine against a real SMTP sink on loopback, found through real DNS answers."""
from datetime import timedelta

import dkim
import pytest
from django.utils import timezone

from sending.bounces import verp
from sending.delivery import engine, selectors
from sending.delivery.pool import pool
from sending.models import DeliveryAttempt, Message, Recipient, Suppression

pytestmark = pytest.mark.django_db

S = Recipient.Status


def refreshed(recipients):
    return [Recipient.objects.get(pk=r.pk) for r in recipients]


def deliver(recipients):
    return engine.deliver([r.id for r in recipients])


def test_it_delivers_a_signed_copy_with_a_verp_return_path(mx, queue_message, signing_domain):
    message, [recipient] = queue_message("alice@dest.test")

    assert deliver([recipient]) == 1

    [got] = mx.messages
    assert got.rcpt_tos == ["alice@dest.test"]
    assert got.mail_from.endswith(f"@bounces.{signing_domain.name}")
    assert verp.decode(got.mail_from) == recipient.id
    assert got.data.startswith(b"DKIM-Signature:")
    assert b"List-Unsubscribe: <" in got.data
    assert b"\r\n..leading dot line" not in got.data  # transparency undone by the server
    assert b"\r\n.leading dot line" in got.data
    record = signing_domain.dkim_public_key
    assert dkim.verify(got.data, dnsfunc=lambda name, timeout=5: f"v=DKIM1; k=rsa; p={record}".encode())

    recipient.refresh_from_db()
    assert recipient.status == S.DELIVERED and recipient.delivered_at is not None
    assert recipient.last_response_code == 250 and recipient.lease_until is None and recipient.attempts == 1
    [attempt] = recipient.delivery_attempts.all()
    assert (attempt.outcome, attempt.mx_host, attempt.remote_ip, attempt.response_code) == ("delivered", "mx.dest.test", "127.0.0.1", 250)
    message.refresh_from_db()
    assert message.status == Message.Status.DELIVERED and message.delivered_at is not None


def test_each_recipient_gets_its_own_outcome(mx, queue_message):
    message, recipients = queue_message("ok@dest.test", "defer@dest.test", "reject@dest.test", "spam@dest.test")

    deliver(recipients)

    ok, deferred, rejected, spam = refreshed(recipients)
    assert ok.status == S.DELIVERED
    assert deferred.status == S.DEFERRED and deferred.last_response_code == 451 and deferred.next_attempt_at > timezone.now()
    assert rejected.status == S.BOUNCED and rejected.last_enhanced_status == "5.1.1"
    assert (rejected.bounce_type, rejected.bounce_class) == ("hard", "InvalidRecipient")
    assert spam.status == S.BOUNCED and spam.bounce_type == "soft"
    assert [m.rcpt_tos for m in mx.messages] == [["ok@dest.test"]]
    # a hard bounce suppresses the address, a soft one does not
    assert list(Suppression.objects.filter(tenant=message.tenant).values_list("email", "source")) == [("reject@dest.test", "bounce")]
    message.refresh_from_db()
    assert message.status == Message.Status.SENDING or message.status == Message.Status.DEFERRED


def test_one_connection_carries_a_batch_and_is_reused_by_the_next_task(mx, queue_message):
    recipients = [queue_message(f"user{i}@dest.test")[1][0] for i in range(5)]
    deliver(recipients[:3])
    deliver(recipients[3:])
    assert len(mx.messages) == 5
    assert mx.connections == 1


def test_it_opens_a_new_connection_after_the_per_connection_cap(mx, queue_message, settings):
    settings.DISPATCH_OUTBOUND_MAX_MESSAGES_PER_CONNECTION = 2
    recipients = [queue_message(f"user{i}@dest.test")[1][0] for i in range(5)]
    deliver(recipients)
    assert len(mx.messages) == 5
    assert mx.connections == 3


def test_a_pooled_connection_the_server_closed_is_replaced_without_counting_an_attempt(mx, queue_message):
    first = queue_message("first@dest.test")[1][0]
    deliver([first])
    for connection in [c for idle in pool._idle.values() for c in idle]:
        connection.sock.close()  # as if the server had timed out the idle connection
        connection.sock = __import__("socket").socket()  # a dead socket the pool does not know about
    second = queue_message("second@dest.test")[1][0]
    deliver([second])
    second.refresh_from_db()
    assert second.status == S.DELIVERED and second.attempts == 1


def test_the_task_claims_other_due_recipients_of_the_same_domain(mx, queue_message):
    recipients = [queue_message(f"user{i}@dest.test")[1][0] for i in range(4)]
    assert deliver(recipients[:1]) == 4
    assert {r.status for r in refreshed(recipients)} == {S.DELIVERED}


def test_a_delivered_recipient_is_never_sent_again(mx, queue_message):
    _, [recipient] = queue_message("once@dest.test")
    deliver([recipient])
    assert deliver([recipient]) == 0  # the task ran twice (broker redelivery)
    # even with its lease long expired and a stale worker coming back
    Recipient.objects.filter(pk=recipient.pk).update(lease_until=timezone.now() - timedelta(hours=1))
    assert deliver([recipient]) == 0
    assert len(mx.messages) == 1


def test_a_worker_that_lost_its_lease_cannot_record(mx, queue_message):
    _, [recipient] = queue_message("race@dest.test")
    lease, [claimed] = engine.claim([recipient.id])
    Recipient.objects.filter(pk=recipient.pk).update(lease_until=lease + timedelta(seconds=1))  # someone else's lease now
    batch = engine.DomainBatch("dest.test", [claimed], lease, engine._Context())
    result = engine.Result("delivered", 250, "2.0.0", "ok")
    assert batch._record(claimed, result, 0) is False
    recipient.refresh_from_db()
    assert recipient.status == S.SENDING and not DeliveryAttempt.objects.filter(recipient=recipient).exists()


def test_a_recipient_whose_lease_expired_is_claimed_again(mx, queue_message):
    _, [recipient] = queue_message("crashed@dest.test")
    Recipient.objects.filter(pk=recipient.pk).update(status=S.SENDING, lease_until=timezone.now() - timedelta(seconds=1))
    assert deliver([recipient]) == 1
    recipient.refresh_from_db()
    assert recipient.status == S.DELIVERED


def test_a_recipient_leased_by_a_live_worker_is_skipped(mx, queue_message):
    _, [recipient] = queue_message("busy@dest.test")
    Recipient.objects.filter(pk=recipient.pk).update(status=S.SENDING, lease_until=timezone.now() + timedelta(minutes=5))
    assert deliver([recipient]) == 0
    assert mx.messages == []


def test_a_deferred_recipient_is_retried_with_growing_backoff_then_expires(mx, queue_message, settings):
    settings.DISPATCH_MAX_QUEUE_LIFETIME = 3600
    message, [recipient] = queue_message("defer@dest.test")
    deliver([recipient])
    recipient.refresh_from_db()
    first_delay = (recipient.next_attempt_at - timezone.now()).total_seconds()
    assert recipient.status == S.DEFERRED and 40 <= first_delay <= 80  # base 60 s +-25 %
    assert deliver([recipient]) == 0  # not due yet

    Recipient.objects.filter(pk=recipient.pk).update(next_attempt_at=timezone.now())
    deliver([recipient])
    recipient.refresh_from_db()
    second_delay = (recipient.next_attempt_at - timezone.now()).total_seconds()
    assert recipient.attempts == 2 and 85 <= second_delay <= 155

    # time moves past the queue lifetime: the next failure is final
    Message.objects.filter(pk=message.pk).update(queued_at=timezone.now() - timedelta(seconds=3601))
    Recipient.objects.filter(pk=recipient.pk).update(next_attempt_at=timezone.now())
    deliver([recipient])
    recipient.refresh_from_db()
    assert recipient.status == S.FAILED and recipient.failed_at is not None
    assert recipient.last_response_text.startswith("expired")
    assert list(recipient.delivery_attempts.values_list("outcome", flat=True)) == ["deferred", "deferred", "failed"]
    message.refresh_from_db()
    assert message.status == Message.Status.FAILED


def test_the_retry_never_goes_past_the_expiry(mx, queue_message, settings):
    settings.DISPATCH_MAX_QUEUE_LIFETIME = 600
    settings.DISPATCH_RETRY_BASE_DELAY = 3600
    message, [recipient] = queue_message("defer@dest.test")
    deliver([recipient])
    recipient.refresh_from_db()
    assert recipient.next_attempt_at <= message.queued_at + timedelta(seconds=600)


def test_an_unreachable_mx_defers_and_the_next_mx_is_tried(dns_server, sink, queue_message, settings):
    settings.DISPATCH_OUTBOUND_SMTP_PORT = sink.port
    dns_server.add("dest.test", "MX", "10 dead.dest.test.")
    dns_server.add("dest.test", "MX", "20 mx.dest.test.")
    dns_server.add("dead.dest.test", "A", "127.0.0.2")  # nothing listens there
    dns_server.add("mx.dest.test", "A", "127.0.0.1")
    _, [recipient] = queue_message("alice@dest.test")
    deliver([recipient])
    recipient.refresh_from_db()
    assert recipient.status == S.DELIVERED
    assert [m.rcpt_tos for m in sink.messages] == [["alice@dest.test"]]


def test_connection_refused_everywhere_defers(dns_server, queue_message, settings):
    settings.DISPATCH_OUTBOUND_SMTP_PORT = 9  # discard port: nothing listens on loopback
    dns_server.add("dest.test", "MX", "10 mx.dest.test.")
    dns_server.add("mx.dest.test", "A", "127.0.0.1")
    _, [recipient] = queue_message("alice@dest.test")
    deliver([recipient])
    recipient.refresh_from_db()
    assert recipient.status == S.DEFERRED and "connect" in recipient.last_response_text


def test_a_dropped_connection_defers_that_recipient_and_the_rest_still_go(mx, queue_message):
    recipients = [queue_message(a)[1][0] for a in ("a@dest.test", "drop@dest.test", "b@dest.test")]
    deliver(recipients)
    a, dropped, b = refreshed(recipients)
    assert (a.status, dropped.status, b.status) == (S.DELIVERED, S.DEFERRED, S.DELIVERED)
    assert sorted(m.rcpt_tos[0] for m in mx.messages) == ["a@dest.test", "b@dest.test"]


def test_a_server_that_stalls_past_the_timeout_defers(mx, queue_message, settings):
    settings.DISPATCH_OUTBOUND_COMMAND_TIMEOUT = 0.5
    mx.stall_seconds = 3
    _, [recipient] = queue_message("stall@dest.test")
    deliver([recipient])
    recipient.refresh_from_db()
    assert recipient.status == S.DEFERRED and "timed out" in recipient.last_response_text


def test_a_421_greeting_defers_and_backs_off_the_host(mx, queue_message):
    mx.greeting = "421 4.3.2 too busy, come back later"
    _, [first] = queue_message("alice@dest.test")
    deliver([first])
    first.refresh_from_db()
    assert first.status == S.DEFERRED and first.last_response_code == 421
    connections = mx.connections

    # the host is left alone: the next message waits without a connection or an attempt
    _, [second] = queue_message("bob@dest.test")
    deliver([second])
    second.refresh_from_db()
    assert mx.connections == connections
    assert second.status == S.QUEUED and second.attempts == 0 and second.next_attempt_at > timezone.now()


def test_a_4_7_reply_backs_off_the_host_for_the_rest_of_the_batch(mx, queue_message):
    recipients = [queue_message(a)[1][0] for a in ("slow@dest.test", "later@dest.test")]
    deliver(recipients)
    slow, later = refreshed(recipients)
    assert slow.status == S.DEFERRED and slow.last_enhanced_status == "4.7.1"
    assert later.status == S.QUEUED and later.attempts == 0
    assert mx.messages == []


def test_the_connection_cap_postpones_instead_of_opening_more(mx, queue_message, settings):
    from sending.delivery import politeness

    settings.DISPATCH_OUTBOUND_MAX_CONNECTIONS_PER_HOST = 1
    held = politeness.acquire_slot("mx.dest.test")
    assert held and politeness.acquire_slot("mx.dest.test") is None
    _, [recipient] = queue_message("alice@dest.test")
    deliver([recipient])
    recipient.refresh_from_db()
    assert recipient.status == S.QUEUED and recipient.attempts == 0 and mx.connections == 0
    politeness.release_slot("mx.dest.test", held)
    Recipient.objects.filter(pk=recipient.pk).update(next_attempt_at=timezone.now())
    deliver([recipient])
    recipient.refresh_from_db()
    assert recipient.status == S.DELIVERED


def test_null_mx_bounces(dns_server, queue_message):
    dns_server.add("dest.test", "MX", "0 .")
    message, [recipient] = queue_message("alice@dest.test")
    deliver([recipient])
    recipient.refresh_from_db()
    assert recipient.status == S.BOUNCED and recipient.last_response_code == 556
    message.refresh_from_db()
    assert message.status == Message.Status.BOUNCED


def test_without_mx_the_a_record_is_used(dns_server, sink, queue_message, settings):
    settings.DISPATCH_OUTBOUND_SMTP_PORT = sink.port
    dns_server.add("dest.test", "A", "127.0.0.1")
    _, [recipient] = queue_message("alice@dest.test")
    deliver([recipient])
    assert [m.rcpt_tos for m in sink.messages] == [["alice@dest.test"]]


def test_a_loopback_mx_is_refused_unless_allowed(mx, queue_message, settings):
    settings.DISPATCH_OUTBOUND_ALLOW_PRIVATE = False
    _, [recipient] = queue_message("alice@dest.test")
    deliver([recipient])
    recipient.refresh_from_db()
    assert recipient.status == S.BOUNCED and "non-public" in recipient.last_response_text
    assert mx.connections == 0


def test_a_dns_failure_defers(dns_server, queue_message):
    dns_server.fail("dest.test", "servfail")
    _, [recipient] = queue_message("alice@dest.test")
    deliver([recipient])
    recipient.refresh_from_db()
    assert recipient.status == S.DEFERRED


def test_an_erased_body_fails_the_recipient(mx, queue_message):
    message, [recipient] = queue_message("alice@dest.test")
    Message.objects.filter(pk=message.pk).update(body=None, body_erased_at=timezone.now())
    deliver([recipient])
    recipient.refresh_from_db()
    assert recipient.status == S.FAILED and mx.messages == []


def test_events_are_emitted_for_every_transition(mx, queue_message):
    from webhooks.models import Event

    _, recipients = queue_message("ok@dest.test", "defer@dest.test", "reject@dest.test")
    deliver(recipients)
    events = {e.payload["recipient"]: e for e in Event.objects.filter(type__in=["delivered", "deferred", "bounced"])}
    assert {k: v.type for k, v in events.items()} == {"ok@dest.test": "delivered", "defer@dest.test": "deferred", "reject@dest.test": "bounced"}
    assert events["defer@dest.test"].payload["next_attempt_at"].endswith("Z")
    bounced = events["reject@dest.test"].payload
    assert bounced["bounce_classification"] == "InvalidRecipient"
    assert bounced["response"]["code"] == 550


def test_repeated_soft_bounces_at_delivery_suppress_when_configured(mx, queue_message, settings):
    settings.DISPATCH_SOFT_BOUNCE_SUPPRESS_AFTER = 2
    message, [first] = queue_message("spam@dest.test")
    deliver([first])
    assert refreshed([first])[0].bounce_type == "soft"
    assert not Suppression.objects.filter(tenant=message.tenant).exists()  # once is not yet "repeated"
    _, [second] = queue_message("spam@dest.test")
    deliver([second])
    [suppression] = Suppression.objects.filter(tenant=message.tenant)
    assert (suppression.email, suppression.reason, suppression.source) == ("spam@dest.test", "repeated soft bounces", "bounce")


def test_soft_bounces_at_delivery_never_suppress_by_default(mx, queue_message):
    for _ in range(3):
        message, recipients = queue_message("spam@dest.test")
        deliver(recipients)
    assert not Suppression.objects.filter(tenant=message.tenant).exists()


def test_outcomes_are_counted_in_the_usage_of_the_month(mx, queue_message, tenant):
    from tenants.models import UsageCounter

    _, recipients = queue_message("a@dest.test", "b@dest.test", "defer@dest.test", "reject@dest.test", "spam@dest.test")
    deliver(recipients)
    [usage] = UsageCounter.objects.filter(tenant=tenant)
    assert (usage.delivered, usage.hard_bounce, usage.soft_bounce, usage.failed) == (2, 1, 1, 0)


def test_capture_mode_stores_the_signed_copy_and_sends_nothing(sink, queue_message, settings, signing_domain):
    from dispatch_site import crypto

    settings.DISPATCH_DELIVERY_MODE = "capture"
    message, [recipient] = queue_message("anyone@nowhere.invalid")
    deliver([recipient])
    recipient.refresh_from_db()
    assert recipient.status == S.DELIVERED and sink.connections == 0
    captured = selectors.captured_copy(recipient)
    assert captured == crypto.decrypt(recipient.captured_message, recipient.captured_associated_data)
    record = signing_domain.dkim_public_key
    assert dkim.verify(captured, dnsfunc=lambda name, timeout=5: f"v=DKIM1; k=rsa; p={record}".encode())
    message.refresh_from_db()
    assert message.status == Message.Status.DELIVERED


def test_smarthost_receives_everything(sink, queue_message, settings):
    settings.DISPATCH_SMARTHOST = f"127.0.0.1:{sink.port}"
    _, recipients = queue_message("a@one.test", "b@two.test")
    deliver(recipients)
    assert sorted(m.rcpt_tos[0] for m in sink.messages) == ["a@one.test", "b@two.test"]


def test_effects_a_dead_worker_left_pending_are_replayed_by_the_sweeper(mx, queue_message):
    from sending.delivery import recording, services
    from webhooks.models import Event

    message, [recipient] = queue_message("alice@dest.test")
    lease, [claimed] = engine.claim([recipient.id])
    recorder = recording.Recorder()
    assert recorder.record(claimed, engine.Result("delivered", 250, "2.0.0", "ok", "mx.dest.test"), 0, lease=lease)
    # the worker dies before flushing: the outcome is recorded, its effects are not
    recipient.refresh_from_db()
    assert recipient.status == S.DELIVERED and recipient.effects_pending
    assert not DeliveryAttempt.objects.filter(recipient=recipient).exists()

    assert recording.replay_pending_effects() == 0  # the lease still runs: the worker may flush yet
    Recipient.objects.filter(pk=recipient.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    services.sweep()

    recipient.refresh_from_db()
    assert not recipient.effects_pending and recipient.lease_until is None
    assert list(recipient.delivery_attempts.values_list("outcome", "response_code")) == [("delivered", 250)]
    assert Event.objects.filter(type="delivered", payload__recipient="alice@dest.test").count() == 1
    message.refresh_from_db()
    assert message.status == Message.Status.DELIVERED
    # and the late worker's flush finds nothing left to apply
    recorder.flush()
    assert Event.objects.filter(type="delivered", payload__recipient="alice@dest.test").count() == 1


def test_a_blocked_tenants_mail_is_held_not_failed(mx, queue_message, tenant):
    from tenants.models import Tenant

    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.BLOCKED)
    _, [recipient] = queue_message("alice@dest.test")
    assert deliver([recipient]) == 1
    recipient.refresh_from_db()
    assert recipient.status == S.QUEUED and recipient.attempts == 0 and recipient.next_attempt_at > timezone.now()
    assert mx.connections == 0


def test_a_row_whose_effects_are_pending_waits_for_the_replay(mx, queue_message):
    _, [recipient] = queue_message("alice@dest.test")
    Recipient.objects.filter(pk=recipient.pk).update(status=S.DEFERRED, effects_pending=True, lease_until=timezone.now())
    assert deliver([recipient]) == 0


def test_a_long_batch_renews_its_lease_and_drops_rows_taken_over(mx, queue_message):
    recipients = [queue_message(f"user{i}@dest.test")[1][0] for i in range(2)]
    lease, claimed = engine.claim([r.id for r in recipients])
    batch = engine.DomainBatch("dest.test", claimed, lease, engine._Context())
    # most of the lease is used up, and another worker took the second row over meanwhile
    old = timezone.now() + timedelta(seconds=10)
    Recipient.objects.filter(pk=recipients[0].pk).update(lease_until=old)
    Recipient.objects.filter(pk=recipients[1].pk).update(lease_until=old + timedelta(seconds=1))
    batch.lease = old

    batch.run()

    first, second = refreshed(recipients)
    assert first.status == S.DELIVERED
    assert second.status == S.SENDING and second.lease_until == old + timedelta(seconds=1)
    assert [m.rcpt_tos for m in mx.messages] == [["user0@dest.test"]]


# --- the ledger survives a lost database connection ---------------------------------------------
def _kill_backend(pid):
    import psycopg
    from django.conf import settings

    params = settings.DATABASES["default"]
    with psycopg.connect(host=params["HOST"], port=params["PORT"] or 5432, user=params["USER"],
                         password=params["PASSWORD"], dbname=params["NAME"], autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


@pytest.mark.django_db(transaction=True)
def test_an_outcome_is_recorded_after_the_database_connection_was_killed(mx, queue_message, monkeypatch):
    """A remote 250 and then a dead connection (PostgreSQL restarted, backend killed): the outcome
    reaches the ledger on a new connection instead of waiting out the lease and sending again."""
    from django.db import connection

    from sending.delivery import recording

    monkeypatch.setattr(recording, "RECORD_RETRY_DELAYS", (0.05, 0.1))
    message, [recipient] = queue_message("alice@dest.test")
    lease, [claimed] = engine.claim([recipient.id])
    connection.ensure_connection()
    _kill_backend(connection.connection.info.backend_pid)

    recorder = recording.Recorder()
    assert recorder.record(claimed, engine.Result("delivered", 250, "2.0.0", "ok", "mx.dest.test"), 0, lease=lease)
    recorder.flush()
    recipient.refresh_from_db()
    assert recipient.status == S.DELIVERED and recipient.attempts == 1 and not recipient.effects_pending
    assert list(recipient.delivery_attempts.values_list("outcome", flat=True)) == ["delivered"]


@pytest.mark.django_db(transaction=True)
def test_an_outcome_whose_commit_reply_was_lost_is_not_taken_for_a_lost_lease(mx, queue_message, monkeypatch):
    """The UPDATE committed but its reply never arrived: the retry finds the row already carrying
    this lease's outcome and keeps it (one attempt counted, effects applied once)."""
    from django.db import connection

    from sending.delivery import recording
    from tests.support.db_faults import first_reply_lost

    monkeypatch.setattr(recording, "RECORD_RETRY_DELAYS", (0.05,))
    message, [recipient] = queue_message("alice@dest.test")
    lease, [claimed] = engine.claim([recipient.id])
    recorder = recording.Recorder()
    with first_reply_lost(connection):
        assert recorder.record(claimed, engine.Result("delivered", 250, "2.0.0", "ok", "mx.dest.test"), 0, lease=lease)
    recorder.flush()
    recipient.refresh_from_db()
    assert recipient.status == S.DELIVERED and recipient.attempts == 1 and not recipient.effects_pending
    assert recipient.delivery_attempts.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_database_that_stays_down_still_fails_the_record(mx, queue_message, monkeypatch):
    from django.db import OperationalError, connection

    from sending.delivery import recording

    monkeypatch.setattr(recording, "RECORD_RETRY_DELAYS", (0.01, 0.01))
    message, [recipient] = queue_message("alice@dest.test")
    lease, [claimed] = engine.claim([recipient.id])
    attempts = []

    def down():
        attempts.append(1)
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", down)
    with pytest.raises(OperationalError):
        recording.Recorder().record(claimed, engine.Result("delivered", 250, "2.0.0", "ok", "mx.dest.test"), 0, lease=lease)
    assert len(attempts) == 3
