"""The development default (SQLite, no Redis) from submission to delivery outcomes, in a process
of its own: tests/delivery/test_sqlite_development.py runs it with DATABASE_URL=sqlite:///...
and reads what it observed (a JSON file) — the suite's own processes are on PostgreSQL, so the
non-PostgreSQL branches of the store, the claims and the recording run only here.

    python tests/delivery/sqlite_scenario.py <output.json>

Environment: DATABASE_URL (SQLite), DISPATCH_VAR_DIR, DISPATCH_DNS_NAMESERVERS (dest.test's
MX is a sink on loopback, DISPATCH_OUTBOUND_SMTP_PORT), DISPATCH_DELIVERY_MODE=mx.

Steps (each one's state is recorded under its name):
  submitted  the API path (submit with and without an Idempotency-Key, submit_many) and the
             SMTP path (submit_raw_many) store messages through the transactional store
  first      the Celery delivery task's functions (deliver_recipients: claim, then drain:
             claim_due) deliver, defer, bounce
  again      the task runs again at once: nothing is due, nothing is sent
  retried    the deferred recipients are made due and the task runs again
  resubmit   a new message to the hard-bounced address: suppressed at submission
  replayed   a worker records an outcome and dies before its effects; the sweeper replays them
  reply_lost the ledger UPDATE commits but fails on its way back; the retry keeps the outcome
"""
import json
import os
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dispatch_site.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

SENDER = "hello@example.com"


def main(out_path):
    assert connection.vendor == "sqlite", connection.vendor
    call_command("migrate", "--noinput", verbosity=0)

    from domains.services import domain_mark_verified_for_development
    from sending import services
    from sending.delivery import engine, recording, tasks
    from sending.delivery import services as delivery_services
    from sending.delivery.pool import pool
    from sending.models import Recipient
    from tenants.models import User
    from tenants.services import credential_create, plans_seed, tenant_create
    from tests.support.db_faults import first_reply_lost
    from webhooks.services import endpoint_create

    plans_seed()
    user = User.objects.create_user(email="owner@example.org", password="correct horse battery staple")
    tenant = tenant_create(owner=user, name="SQLite", plan="starter")
    credential, _ = credential_create(tenant=tenant, label="dev")
    domain_mark_verified_for_development(tenant=tenant, name="example.com")
    endpoint, _ = endpoint_create(tenant=tenant, url="https://hooks.example.net/dispatch", events=["delivered", "bounced"])
    observed = {"tenant": str(tenant.id), "endpoint": str(endpoint.id)}

    # --- submission: API path (one message, then a batch) and SMTP path (a batch) ----------
    mixed = services.submit(tenant=tenant, credential=credential, request=services.SendRequest(
        from_=SENDER, to=["ok@dest.test", "defer@dest.test", "reject@dest.test"], subject="Mixed", text_body="One.\n"))
    batch = services.submit_many(tenant=tenant, credential=credential, requests=[
        services.SendRequest(from_=SENDER, to=["one@dest.test"], subject="Batch 1", text_body="Two.\n"),
        services.SendRequest(from_=SENDER, to=["spam@dest.test"], subject="Batch 2", text_body="Three.\n"),
    ])
    raw = services.submit_raw_many(tenant=tenant, credential=credential, items=[
        {"mail_from": SENDER, "rcpt_tos": ["raw@dest.test", "hidden@dest.test"],
         "raw": _raw("Raw 1", "raw@dest.test")},
        {"mail_from": SENDER, "rcpt_tos": ["reject2@dest.test"], "raw": _raw("Raw 2", "reject2@dest.test")},
    ])
    # An Idempotency-Key: the same request again is answered from the first, nothing is stored twice
    keyed = services.SendRequest(from_=SENDER, to=["keyed@dest.test"], subject="Keyed", text_body="Once.\n")
    first_keyed = services.submit(tenant=tenant, request=keyed, idempotency_key="k-1", request_hash="h-1")
    replay = services.submit(tenant=tenant, request=keyed, idempotency_key="k-1", request_hash="h-1")
    try:
        services.submit(tenant=tenant, request=keyed, idempotency_key="k-1", request_hash="h-2")
        observed["idempotency_reused"] = None
    except services.IdempotencyKeyReused as exc:
        observed["idempotency_reused"] = exc.code
    observed["idempotency"] = {"first": first_keyed.response, "replay": replay.response, "replayed": replay.replayed}
    results = [mixed, *batch, *raw, first_keyed]
    observed["messages"] = {r.message.subject: str(r.message.id) for r in results}
    observed["submit_responses"] = [r.response for r in results]
    observed["submitted"] = snapshot(tenant)

    # --- delivery, as the Celery task runs it (tasks.deliver_recipients: engine.deliver, drain)
    first_ids = [r.id for r in mixed.recipients]
    tasks.deliver_recipients(first_ids)  # called directly: runs in this process
    observed["first"] = snapshot(tenant)

    # --- the task again (a broker redelivery, a sweep): nothing is due ----------------------
    all_ids = list(Recipient.objects.values_list("id", flat=True))
    observed["again_handled"] = engine.deliver(all_ids)
    tasks.deliver_recipients(all_ids)
    observed["again"] = snapshot(tenant)

    # --- the deferred recipients' retry comes due -----------------------------------------
    Recipient.objects.filter(status=Recipient.Status.DEFERRED).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    observed["retried_handled"] = engine.deliver(all_ids)
    observed["retried"] = snapshot(tenant)

    # --- the hard-bounced address is suppressed for the next submission ---------------------
    again = services.submit(tenant=tenant, request=services.SendRequest(
        from_=SENDER, to=["REJECT@dest.test", "fresh@dest.test"], subject="After the bounce", text_body="Four.\n"))
    observed["messages"][again.message.subject] = str(again.message.id)
    observed["resubmit_response"] = again.response
    observed["resubmit_drained"] = delivery_services.drain(seconds=5)
    observed["resubmit"] = snapshot(tenant)

    # --- a worker records an outcome, then dies before applying its effects ------------------
    late = services.submit(tenant=tenant, request=services.SendRequest(
        from_=SENDER, to=["late@dest.test"], subject="Dead worker", text_body="Five.\n"))
    observed["messages"][late.message.subject] = str(late.message.id)
    lease, [claimed] = engine.claim([late.recipients[0].id])
    recorder = recording.Recorder()
    result = engine.Result("delivered", 250, "2.0.0", "ok, queued", "mx.dest.test", "127.0.0.1")
    observed["late_recorded"] = recorder.record(claimed, result, 0.0, lease=lease)
    observed["late_before_sweep"] = snapshot(tenant)
    Recipient.objects.filter(pk=claimed.pk).update(lease_until=timezone.now() - timedelta(seconds=1))  # its lease ran out
    observed["late_replayed"] = recording.replay_pending_effects()
    observed["replayed"] = snapshot(tenant)
    observed["replayed_again"] = recording.replay_pending_effects()

    # --- the ledger UPDATE commits but its reply is lost: the retry must see its own outcome --
    lost = services.submit(tenant=tenant, request=services.SendRequest(
        from_=SENDER, to=["lost@dest.test"], subject="Reply lost", text_body="Six.\n"))
    observed["messages"][lost.message.subject] = str(lost.message.id)
    lease, [claimed] = engine.claim([lost.recipients[0].id])
    recording.RECORD_RETRY_DELAYS = (0.01,)
    recorder = recording.Recorder()
    with first_reply_lost(connection, "disk I/O error"):
        observed["lost_recorded"] = recorder.record(claimed, result, 0.0, lease=lease)
    recorder.flush()
    observed["reply_lost"] = snapshot(tenant)

    pool.close_all()
    Path(out_path).write_text(json.dumps(observed, indent=1, default=str))


def _raw(subject, to):
    return (f"From: Hello <{SENDER}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nRaw body.\r\n").encode()


def snapshot(tenant):
    """The rows the tests look at, as plain JSON."""
    from django.db.models import Count

    from sending.models import DeliveryAttempt, Message, Recipient, Suppression
    from tenants.models import UsageCounter
    from webhooks.models import Delivery, Event

    now = timezone.now()
    recipients = {}
    for r in Recipient.objects.order_by("id"):
        recipients[r.email] = {
            "id": r.id, "message": str(r.message_id), "status": r.status, "attempts": r.attempts,
            "code": r.last_response_code, "enhanced": r.last_enhanced_status, "text": r.last_response_text,
            "bounce_class": r.bounce_class, "bounce_type": r.bounce_type,
            "retry_in": (r.next_attempt_at - now).total_seconds() if r.next_attempt_at else None,
            "lease_until": r.lease_until, "effects_pending": r.effects_pending,
            "delivered_at": r.delivered_at, "bounced_at": r.bounced_at,
            "delivery_attempts": [
                {"outcome": a.outcome, "code": a.response_code, "enhanced": a.enhanced_status,
                 "mx_host": a.mx_host, "remote_ip": a.remote_ip}
                for a in DeliveryAttempt.objects.filter(recipient=r).order_by("id")
            ],
        }
    messages = {
        str(m.id): {"status": m.status, "bounce_type": m.bounce_type, "delivered_at": m.delivered_at,
                    "bounced_at": m.bounced_at, "body_size_bytes": m.body_size_bytes, "source": m.source}
        for m in Message.objects.all()
    }
    events = [
        {"type": e.type, "email": e.payload["recipient"], "message": e.payload["email_id"], "payload": e.payload}
        for e in Event.objects.order_by("created_at", "id")
    ]
    suppressions = list(Suppression.objects.filter(tenant=tenant).values("email", "source", "bounce_class"))
    usage = list(UsageCounter.objects.filter(tenant=tenant).values(
        "emails_sent", "delivered", "hard_bounce", "soft_bounce", "failed"))
    event_counts = dict(Event.objects.values_list("type").annotate(n=Count("id")))
    webhook_deliveries = [
        {"endpoint": str(d.endpoint_id), "type": d.event.type, "email": d.event.payload["recipient"], "status": d.status}
        for d in Delivery.objects.select_related("event").order_by("created_at", "id")
    ]
    return {"webhook_deliveries": webhook_deliveries, "recipients": recipients, "messages": messages, "events": events, "event_counts": event_counts,
            "suppressions": suppressions, "usage": usage}


if __name__ == "__main__":
    main(sys.argv[1])
