"""Quota reservation on the submission path, the "sent" events, delivery enqueueing after
commit, and the message status aggregate."""

import pytest

from sending import events
from sending.models import Message, Recipient, Suppression
from sending.services import aggregate_status, message_refresh_status
from tenants.limits import reserve
from tenants.models import UsageCounter
from tests.support.concurrency import run_concurrently

from .conftest import message_payload
from .test_send_api import assert_error

pytestmark = pytest.mark.django_db


def set_quota(tenant, quota, *, overage=False, plan_allows=True):
    plan = tenant.plan
    plan.monthly_quota, plan.overage_allowed = quota, plan_allows
    plan.save()
    tenant.overage_enabled = overage
    tenant.save()


def test_sends_count_recipients_against_the_quota(api, send_url, verified_domain, tenant):
    set_quota(tenant, 3)
    assert api.post(send_url, message_payload(to=["a@example.org", "b@example.org"]), format="json").status_code == 200
    error = assert_error(api.post(send_url, message_payload(to=["c@example.org", "d@example.org"]), format="json"), 400, "QUOTA_EXCEEDED")
    assert error["message"] == "Monthly quota exceeded (2/3). Enable overage or upgrade plan."
    assert api.post(send_url, message_payload(to=["c@example.org"]), format="json").status_code == 200
    assert UsageCounter.objects.get(tenant=tenant).emails_sent == 3
    assert Message.objects.count() == 2


def test_suppressed_recipients_do_not_count(api, send_url, verified_domain, tenant):
    Suppression.objects.create(tenant=tenant, email="b@example.org")
    api.post(send_url, message_payload(to=["a@example.org", "b@example.org"]), format="json")
    assert UsageCounter.objects.get(tenant=tenant).emails_sent == 1


def test_overage_lets_sending_continue_and_is_counted(tenant):
    set_quota(tenant, 2, overage=True)
    reserve(tenant=tenant, count=1)
    reserve(tenant=tenant, count=3)
    counter = UsageCounter.objects.get(tenant=tenant)
    assert (counter.emails_sent, counter.overage) == (4, 2)


def test_overage_needs_the_plan_to_allow_it(tenant):
    from dispatch_site.errors import QuotaExceeded

    set_quota(tenant, 1, overage=True, plan_allows=False)
    reserve(tenant=tenant, count=1)
    with pytest.raises(QuotaExceeded):
        reserve(tenant=tenant, count=1)


@pytest.mark.django_db(transaction=True)
def test_concurrent_reservations_never_exceed_the_quota(tenant):
    from dispatch_site.errors import QuotaExceeded

    set_quota(tenant, 10)

    def take(index):
        try:
            reserve(tenant=tenant, count=3)
            return True
        except QuotaExceeded:
            return False

    outcomes = run_concurrently(8, take)
    assert outcomes.count(True) == 3
    assert UsageCounter.objects.get(tenant=tenant).emails_sent == 9


def test_a_rejected_submission_gives_its_reservation_back(api, send_url, verified_domain, tenant, monkeypatch):
    from sending import services

    real_insert_many = services.insert_many

    def insert_failing_for_recipients(objs, **kwargs):
        objs = list(objs)
        if objs and isinstance(objs[0], services.Recipient):
            raise RuntimeError("disk full")
        return real_insert_many(objs, **kwargs)

    monkeypatch.setattr(services, "insert_many", insert_failing_for_recipients)
    response = api.post(send_url, message_payload(), format="json")
    assert response.status_code == 500
    assert not UsageCounter.objects.filter(tenant=tenant, emails_sent__gt=0).exists()
    assert not Message.objects.exists()
    from tenants import ratelimit

    assert ratelimit.peek(tenant=tenant).used == 0  # the per-minute budget was refunded too


def test_release_is_the_exact_inverse_of_reserve_with_overage(tenant):
    from tenants.limits import release

    set_quota(tenant, 5, overage=True)
    reserve(tenant=tenant, count=4)
    reserve(tenant=tenant, count=3)  # 7 sent, 2 of them overage
    release(tenant=tenant, count=3)
    counter = UsageCounter.objects.get(tenant=tenant)
    assert (counter.emails_sent, counter.overage) == (4, 0)
    reserve(tenant=tenant, count=3)
    release(tenant=tenant, count=1)
    counter.refresh_from_db()
    assert (counter.emails_sent, counter.overage) == (6, 1)


# --- events ---------------------------------------------------------------------------------------
def test_each_queued_recipient_emits_sent_with_the_webhook_payload(api, send_url, verified_domain, tenant, monkeypatch):
    recorded = []
    monkeypatch.setattr(events, "_record_many", lambda *, tenant, items, endpoints=None: recorded.extend(
        {"tenant": tenant, "event": event, "payload": payload} for event, payload in items
    ))
    Suppression.objects.create(tenant=tenant, email="gone@example.org")
    response = api.post(send_url, message_payload(to=["a@example.org", "gone@example.org"], tags=["t1"], metadata={"k": 1}), format="json")
    data = response.json()["data"]
    assert [(r["event"], r["payload"]["recipient"]) for r in recorded] == [("sent", "a@example.org"), ("suppressed", "gone@example.org")]
    payload = recorded[0]["payload"]
    assert recorded[0]["tenant"] == tenant
    assert payload["sender"] == "sender@example.com"
    assert payload["message_id"] == data["message_id"] and payload["email_id"] == data["id"]
    assert payload["tenant_id"] == str(tenant.id)
    assert payload["tags"] == ["t1"] and payload["metadata"] == {"k": 1}
    assert payload["timestamp"].endswith("Z") and "T" in payload["timestamp"]


def test_emit_adds_details_and_refuses_unknown_events(tenant, monkeypatch):
    recorded = []
    monkeypatch.setattr(events, "_record_many", lambda *, tenant, items, endpoints=None: recorded.extend(items))
    message = Message(tenant=tenant, message_id="m@x", from_address="s@example.com", tags=[], metadata={})
    recipient = Recipient(tenant=tenant, message=message, email="r@example.org")
    payload = events.emit("bounced", recipient=recipient, response={"code": 550, "content": "User not found"},
                          bounce_classification="InvalidRecipient")
    assert payload["response"] == {"code": 550, "content": "User not found"}
    assert payload["bounce_classification"] == "InvalidRecipient" and payload["event"] == "bounced"
    assert recorded == [("bounced", payload)]
    with pytest.raises(ValueError):
        events.emit("opened", recipient=recipient)


# --- enqueue after commit -----------------------------------------------------------------------
def test_delivery_is_enqueued_after_commit_with_recipient_ids(api, send_url, verified_domain, monkeypatch, django_capture_on_commit_callbacks):
    from dispatch_site.celery import app

    calls = []
    monkeypatch.setattr(app, "send_task", lambda name, **kw: calls.append((name, kw)))
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(send_url, message_payload(to=["a@example.org", "b@example.org"]), format="json")
    ids = sorted(Recipient.objects.filter(message_id=response.json()["data"]["id"]).values_list("id", flat=True))
    assert calls == [("sending.delivery.tasks.deliver_recipients", {"args": [ids], "queue": "delivery", "retry": False})]


def test_a_broker_outage_still_accepts_the_message(api, send_url, verified_domain, monkeypatch, django_capture_on_commit_callbacks):
    from dispatch_site.celery import app

    def down(*args, **kwargs):
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(app, "send_task", down)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(send_url, message_payload(), format="json")
    assert response.status_code == 200
    assert Recipient.objects.get().status == "queued"


# --- status aggregate ---------------------------------------------------------------------------
@pytest.mark.parametrize("counts, status", [
    ({"queued": 2}, "queued"),
    ({"queued": 1, "suppressed": 1}, "queued"),
    ({"queued": 1, "delivered": 1}, "sending"),
    ({"sending": 1}, "sending"),
    ({"deferred": 1, "delivered": 1}, "deferred"),
    ({"deferred": 1, "sending": 1}, "sending"),
    ({"delivered": 2, "suppressed": 1}, "delivered"),
    ({"delivered": 1, "bounced": 1}, "partially_delivered"),
    ({"delivered": 1, "failed": 1}, "partially_delivered"),
    ({"bounced": 1, "failed": 1}, "bounced"),
    ({"failed": 2}, "failed"),
    ({"suppressed": 2}, "suppressed"),
])
def test_aggregate_status(counts, status):
    assert aggregate_status(counts) == status


def test_message_refresh_status_updates_status_bounce_type_and_times(api, send_url, verified_domain):
    from django.utils import timezone

    response = api.post(send_url, message_payload(to=["a@example.org", "b@example.org"]), format="json")
    message_id = response.json()["data"]["id"]
    now = timezone.now()
    Recipient.objects.filter(email="a@example.org").update(status="delivered", delivered_at=now)
    Recipient.objects.filter(email="b@example.org").update(status="bounced", bounce_type="hard", bounced_at=now)
    assert message_refresh_status(message_id=message_id) == "partially_delivered"
    message = Message.objects.get(pk=message_id)
    assert (message.status, message.bounce_type, message.delivered_at, message.bounced_at) == ("partially_delivered", "hard", now, now)


def test_sent_events_reach_the_webhook_event_store(api, bulk_url, verified_domain, tenant):
    from webhooks.models import Event

    messages = [message_payload(to=["a@example.org", "b@example.org"]), message_payload(to=["c@example.org"])]
    assert api.post(bulk_url, {"messages": messages}, format="json").json()["data"]["sent"] == 2
    sent = Event.objects.filter(tenant=tenant, type="sent")
    assert sorted(e.payload["recipient"] for e in sent) == ["a@example.org", "b@example.org", "c@example.org"]


def test_the_per_minute_rate_limit_answers_429(api, send_url, verified_domain, tenant):
    plan = tenant.plan
    plan.rate_limit_per_minute = 2
    plan.save()
    assert api.post(send_url, message_payload(to=["a@example.org", "b@example.org"]), format="json").status_code == 200
    response = api.post(send_url, message_payload(to=["c@example.org"]), format="json")
    assert_error(response, 429, "RATE_LIMITED")
    assert int(response["Retry-After"]) > 0
    assert Message.objects.count() == 1


def test_delivery_events_are_counted_in_usage(api, send_url, verified_domain, tenant, monkeypatch):
    monkeypatch.setattr(events, "_record_many", lambda **kw: None)
    api.post(send_url, message_payload(to=["a@example.org", "b@example.org"]), format="json")
    first, second = Recipient.objects.order_by("id")
    events.emit("delivered", recipient=first)
    events.emit("bounced", recipient=second, bounce_type="hard", bounce_classification="InvalidRecipient")
    counter = UsageCounter.objects.get(tenant=tenant)
    assert (counter.emails_sent, counter.delivered, counter.hard_bounce) == (2, 1, 1)


def test_emit_many_records_outcomes_with_details_and_counts_usage_per_kind(api, send_url, verified_domain, tenant,
                                                                           django_assert_max_num_queries):
    api.post(send_url, message_payload(to=[f"r{i}@example.org" for i in range(5)]), format="json")
    message = Message.objects.get()
    recipients = list(Recipient.objects.order_by("id"))
    items = [("delivered", r, message, {"response": {"code": 250}}) for r in recipients[:3]]
    items += [("bounced", r, message, {"bounce_type": "hard", "bounce_classification": "InvalidRecipient"}) for r in recipients[3:]]
    with django_assert_max_num_queries(6):  # events: 2-3 for the batch; usage: one UPDATE per kind
        payloads = events.emit_many(items, tenant=tenant, count_usage=True)
    assert [p["event"] for p in payloads] == ["delivered"] * 3 + ["bounced"] * 2
    assert payloads[3]["bounce_classification"] == "InvalidRecipient" and payloads[0]["response"] == {"code": 250}
    counter = UsageCounter.objects.get(tenant=tenant)
    assert (counter.emails_sent, counter.delivered, counter.hard_bounce) == (5, 3, 2)
