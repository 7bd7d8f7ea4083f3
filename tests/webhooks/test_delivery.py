"""Signed delivery to a real loopback receiver, retries, disabling, timeouts, durability."""
import base64
import time
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError
from standardwebhooks import Webhook

from dispatch_site import crypto
from tests.webhooks.conftest import Reply
from webhooks import services
from webhooks.models import Delivery, Endpoint, Event

pytestmark = pytest.mark.django_db


def make_endpoint(tenant, url, events=("delivered", "bounced"), secret=None):
    endpoint, secret = services.endpoint_create(tenant=tenant, url=url, events=list(events), secret=secret)
    return endpoint, secret


def record(tenant, event="delivered", **payload):
    payload = {"recipient": "rcpt@example.org", "message_id": "abc@mail.dispatch.test", **payload}
    return services.event_record(tenant=tenant, event=event, payload=payload)


def attempt(delivery):
    return services.delivery_attempt(delivery_id=delivery.pk)


def make_due(delivery):
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def only_delivery(event):
    (delivery,) = Delivery.objects.filter(event=event)
    return delivery


def test_delivered_webhook_verifies_with_standardwebhooks(tenant, receiver, allow_private):
    endpoint, secret = make_endpoint(tenant, receiver.url())
    event = record(tenant, recipient="ann@example.org", response={"code": 250, "content": "OK"})

    delivery = attempt(only_delivery(event))

    assert delivery.status == Delivery.Status.SUCCEEDED
    assert (delivery.attempts, delivery.last_response_code, delivery.last_response_body) == (1, 200, "ok")
    assert delivery.next_attempt_at is None and delivery.succeeded_at is not None
    (request,) = receiver.requests
    assert request.path == "/hook"
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["event"] == "delivered" and payload["recipient"] == "ann@example.org"
    assert payload["tenant_id"] == str(tenant.id) and payload["timestamp"].endswith("Z")
    assert payload["response"] == {"code": 250, "content": "OK"}
    assert request.headers["webhook-id"] == f"msg_{event.id.hex}" == delivery.webhook_id
    assert request.headers["Content-Type"] == "application/json"
    # A different secret must not verify: the check above is a real one.
    with pytest.raises(Exception):
        Webhook(services.signing.generate_secret()).verify(request.body, request.headers)


def test_generated_secret_is_whsec_base64_of_at_least_24_bytes(tenant):
    _, secret = make_endpoint(tenant, "https://hooks.example.com/x")
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) >= 24


def test_plain_secret_from_the_spec_example_verifies_as_bytes(tenant, receiver, allow_private):
    make_endpoint(tenant, receiver.url(), secret="your-webhook-secret")
    attempt(only_delivery(record(tenant)))
    (request,) = receiver.requests
    assert Webhook(b"your-webhook-secret").verify(request.body, request.headers)["event"] == "delivered"


def test_secret_is_encrypted_at_rest_and_bound_to_its_row(tenant, other_tenant):
    endpoint, secret = make_endpoint(tenant, "https://hooks.example.com/x")
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_encrypted FROM webhooks_endpoint WHERE id = %s", [endpoint.id])
        (stored,) = cursor.fetchone()
    stored = bytes(stored)
    assert secret.encode() not in stored and secret.removeprefix("whsec_").encode() not in stored
    assert services.endpoint_secret(Endpoint.objects.get(pk=endpoint.pk)) == secret
    # Copied into another tenant's row, the ciphertext does not decrypt.
    other, _ = make_endpoint(other_tenant, "https://hooks.example.com/y")
    Endpoint.objects.filter(pk=other.pk).update(secret_encrypted=stored)
    with pytest.raises(crypto.DecryptionError):
        services.endpoint_secret(Endpoint.objects.get(pk=other.pk))


def test_only_enabled_subscribed_endpoints_of_the_tenant_get_a_delivery(tenant, other_tenant):
    subscribed, _ = make_endpoint(tenant, "https://a.example.com/", events=["delivered"])
    make_endpoint(tenant, "https://b.example.com/", events=["bounced"])
    disabled, _ = make_endpoint(tenant, "https://c.example.com/", events=["delivered"])
    services.endpoint_update(tenant=tenant, endpoint_id=disabled.pk, enabled=False)
    make_endpoint(other_tenant, "https://d.example.com/", events=["delivered"])

    event = record(tenant, "delivered")

    assert Event.objects.filter(pk=event.pk, tenant=tenant).exists()
    assert [d.endpoint_id for d in Delivery.objects.filter(event=event)] == [subscribed.pk]


def test_event_rolls_back_with_the_callers_transaction(tenant):
    make_endpoint(tenant, "https://a.example.com/")
    with pytest.raises(RuntimeError), transaction.atomic():
        record(tenant)
        raise RuntimeError("caller failed")
    assert not Event.objects.exists() and not Delivery.objects.exists()


def test_deliveries_are_sent_to_the_events_queue_after_commit(tenant, django_capture_on_commit_callbacks):
    make_endpoint(tenant, "https://a.example.com/")
    with mock.patch("webhooks.tasks.deliver_webhook.apply_async") as send:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            event = record(tenant)
            assert not send.called  # nothing leaves before commit
        for callback in callbacks:
            callback()
    send.assert_called_once_with(args=[str(only_delivery(event).pk)], retry=False)
    from webhooks.tasks import deliver_webhook

    assert deliver_webhook.queue == "events"


def test_event_is_recorded_when_the_broker_is_unreachable(tenant, receiver, allow_private,
                                                          django_capture_on_commit_callbacks):
    make_endpoint(tenant, receiver.url())
    down = OperationalError("connection refused")
    with mock.patch("webhooks.tasks.deliver_webhook.apply_async", side_effect=down) as send:
        with django_capture_on_commit_callbacks(execute=True):
            first = record(tenant)
        with django_capture_on_commit_callbacks(execute=True):
            second = record(tenant)
    # The second event did not wait on the broker again (it is marked down for a while).
    assert send.call_count == 1
    for event in (first, second):
        delivery = only_delivery(event)
        assert delivery.status == Delivery.Status.PENDING and delivery.enqueued_at is None

    # The broker is back: the sweeper sends them, the worker delivers them.
    services._broker["down_until"] = 0
    with mock.patch("webhooks.tasks.deliver_webhook.apply_async") as send:
        assert services.deliveries_enqueue_due() == 2
    assert send.call_count == 2
    for event in (first, second):
        assert attempt(only_delivery(event)).status == Delivery.Status.SUCCEEDED
    assert len(receiver.requests) == 2


def test_sweeper_sends_only_due_deliveries_not_already_queued(tenant):
    make_endpoint(tenant, "https://a.example.com/")
    queued = only_delivery(record(tenant))  # enqueued_at = now: the on-commit send owns it
    later = only_delivery(record(tenant))
    Delivery.objects.filter(pk=later.pk).update(enqueued_at=None, next_attempt_at=timezone.now() + timedelta(minutes=5))
    lost = only_delivery(record(tenant))
    Delivery.objects.filter(pk=lost.pk).update(enqueued_at=timezone.now() - timedelta(minutes=10))

    with mock.patch("webhooks.tasks.deliver_webhook.apply_async") as send:
        assert services.deliveries_enqueue_due() == 1
    send.assert_called_once_with(args=[str(lost.pk)], retry=False)
    assert queued.pk != lost.pk


def test_a_claimed_delivery_is_not_attempted_twice(tenant, receiver, allow_private):
    make_endpoint(tenant, receiver.url())
    delivery = only_delivery(record(tenant))
    Delivery.objects.filter(pk=delivery.pk).update(lease_until=timezone.now() + timedelta(minutes=1))
    assert attempt(delivery) is None
    assert receiver.requests == []
    Delivery.objects.filter(pk=delivery.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert attempt(delivery).status == Delivery.Status.SUCCEEDED
    assert attempt(delivery) is None  # succeeded: never sent again
    assert len(receiver.requests) == 1


def test_retries_follow_the_schedule_and_recover_with_the_same_webhook_id(tenant, receiver, allow_private):
    endpoint, secret = make_endpoint(tenant, receiver.url())
    receiver.reply(Reply(500, b"boom"), 503)
    delivery = only_delivery(record(tenant))

    first = attempt(delivery)
    assert (first.status, first.attempts, first.last_response_code, first.last_response_body) == ("failed", 1, 500, "boom")
    assert abs((first.next_attempt_at - first.last_attempt_at).total_seconds() - 5) < 1
    assert attempt(delivery) is None  # not due yet
    assert Endpoint.objects.get(pk=endpoint.pk).failing_since is not None

    make_due(delivery)
    second = attempt(delivery)
    assert (second.status, second.attempts, second.last_response_code) == ("failed", 2, 503)
    assert abs((second.next_attempt_at - second.last_attempt_at).total_seconds() - 300) < 1

    make_due(delivery)
    third = attempt(delivery)
    assert (third.status, third.attempts, third.last_response_code) == ("succeeded", 3, 200)
    assert Endpoint.objects.get(pk=endpoint.pk).failing_since is None
    ids = {r.headers["webhook-id"] for r in receiver.requests}
    assert ids == {delivery.webhook_id} and len(receiver.requests) == 3
    for request in receiver.requests:
        Webhook(secret).verify(request.body, request.headers)


def test_schedule_spans_about_three_days_and_ends_exhausted(tenant, receiver, allow_private):
    assert services.RETRY_DELAYS == (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
    assert 70 * 3600 < sum(services.RETRY_DELAYS) < 80 * 3600
    make_endpoint(tenant, receiver.url())
    receiver.default = Reply(500)
    delivery = only_delivery(record(tenant))
    Delivery.objects.filter(pk=delivery.pk).update(attempts=len(services.RETRY_DELAYS) - 1)

    last = attempt(delivery)

    assert (last.status, last.attempts, last.next_attempt_at) == ("exhausted", 10, None)


def test_410_gone_disables_the_endpoint_and_stops_its_retries(tenant, receiver, allow_private):
    endpoint, _ = make_endpoint(tenant, receiver.url())
    receiver.reply(410)
    first = only_delivery(record(tenant))
    waiting = only_delivery(record(tenant))

    result = attempt(first)

    endpoint.refresh_from_db()
    assert (result.status, result.last_response_code, result.next_attempt_at) == ("failed", 410, None)
    assert endpoint.enabled is False and "410" in endpoint.disabled_reason
    waiting.refresh_from_db()
    assert waiting.status == "failed" and waiting.next_attempt_at is None and "disabled" in waiting.last_error
    assert attempt(waiting) is None
    assert len(receiver.requests) == 1
    # New events no longer go to it.
    assert not Delivery.objects.filter(event=record(tenant)).exists()


def test_endpoint_failing_continuously_past_the_limit_is_disabled(tenant, receiver, allow_private, settings):
    settings.DISPATCH_WEBHOOK_DISABLE_AFTER_HOURS = 72
    endpoint, _ = make_endpoint(tenant, receiver.url())
    receiver.default = Reply(500)
    Endpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now() - timedelta(hours=71))
    attempt(only_delivery(record(tenant)))
    endpoint.refresh_from_db()
    assert endpoint.enabled is True

    Endpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now() - timedelta(hours=73))
    attempt(only_delivery(record(tenant)))
    endpoint.refresh_from_db()
    assert endpoint.enabled is False and "72 h" in endpoint.disabled_reason and endpoint.disabled_at is not None


def test_redirects_are_not_followed(tenant, receiver, allow_private):
    make_endpoint(tenant, receiver.url("/old"))
    receiver.reply(Reply(301, b"", headers={"Location": receiver.url("/new")}))
    delivery = attempt(only_delivery(record(tenant)))
    assert (delivery.status, delivery.last_response_code) == ("failed", 301)
    assert [r.path for r in receiver.requests] == ["/old"]


def test_response_body_is_stored_truncated(tenant, receiver, allow_private):
    make_endpoint(tenant, receiver.url())
    receiver.reply(Reply(500, b"x" * 10_000 + b"\x00"))
    delivery = attempt(only_delivery(record(tenant)))
    assert delivery.last_response_body == "x" * 2048


def test_a_slow_receiver_times_out(tenant, receiver, allow_private, settings):
    settings.DISPATCH_WEBHOOK_TIMEOUT = 0.5
    make_endpoint(tenant, receiver.url())
    receiver.reply(Reply(200, delay=3))
    started = time.monotonic()
    delivery = attempt(only_delivery(record(tenant)))
    assert time.monotonic() - started < 2
    assert delivery.status == "failed" and delivery.last_response_code is None
    assert "timeout" in delivery.last_error


def test_a_receiver_dribbling_its_answer_is_cut_at_the_total_deadline(tenant, receiver, allow_private, settings):
    settings.DISPATCH_WEBHOOK_TIMEOUT = 0.6
    make_endpoint(tenant, receiver.url())
    receiver.reply(Reply(200, drip=0.1))  # each byte arrives well within a per-read timeout
    started = time.monotonic()
    delivery = attempt(only_delivery(record(tenant)))
    assert time.monotonic() - started < 1.5
    assert delivery.status == "failed" and "timeout" in delivery.last_error


def test_refused_connection_is_a_failed_attempt(tenant, allow_private):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    make_endpoint(tenant, f"http://127.0.0.1:{port}/")
    delivery = attempt(only_delivery(record(tenant)))
    assert delivery.status == "failed" and delivery.next_attempt_at is not None
    assert "connect failed" in delivery.last_error


def test_https_delivery_connects_to_the_resolved_address_with_sni_and_verification(
    tenant, tls_receiver, tls_material, allow_private, dns_server, monkeypatch
):
    from webhooks import http_client

    monkeypatch.setattr(http_client, "tls_context", lambda: tls_material[1])
    dns_server.add("hook.test", "A", "127.0.0.1")
    dns_server.add("wrong.test", "A", "127.0.0.1")
    make_endpoint(tenant, tls_receiver.url(host="hook.test", scheme="https"), events=["delivered"])
    make_endpoint(tenant, tls_receiver.url(host="wrong.test", scheme="https"), events=["bounced"])

    good = attempt(only_delivery(record(tenant, "delivered")))
    bad = attempt(only_delivery(record(tenant, "bounced")))

    assert good.status == "succeeded"
    assert tls_receiver.requests[0].headers["Host"] == f"hook.test:{tls_receiver.port}"
    assert "hook.test" in tls_receiver.server_names
    # The certificate is for hook.test: wrong.test is refused even though the address is the same.
    assert bad.status == "failed" and "TLS" in bad.last_error and len(tls_receiver.requests) == 1


def test_old_events_are_pruned_unless_a_retry_is_still_scheduled(tenant, settings):
    settings.DISPATCH_WEBHOOK_EVENT_RETENTION_DAYS = 30
    make_endpoint(tenant, "https://a.example.com/")
    old_done, old_retrying, recent = record(tenant), record(tenant), record(tenant)
    Event.objects.filter(pk__in=[old_done.pk, old_retrying.pk]).update(created_at=timezone.now() - timedelta(days=31))
    Delivery.objects.filter(event=old_done).update(status="exhausted", next_attempt_at=None)

    assert services.events_prune() == 1

    assert set(Event.objects.values_list("pk", flat=True)) == {old_retrying.pk, recent.pk}
    assert not Delivery.objects.filter(event_id=old_done.pk).exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_celery_worker_on_the_events_queue_delivers_after_commit(tenant, receiver, allow_private):
    from celery.contrib.testing.worker import start_worker

    from dispatch_site.celery import app

    _, secret = make_endpoint(tenant, receiver.url())
    with start_worker(app, queues=["events"], pool="solo", perform_ping_check=False, shutdown_timeout=10):
        with transaction.atomic():
            event = record(tenant)
        deadline = time.monotonic() + 10
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.05)
    (request,) = receiver.requests
    assert Webhook(secret).verify(request.body, request.headers)["event"] == "delivered"
    assert only_delivery(event).status == Delivery.Status.SUCCEEDED


def test_sending_emit_reaches_the_receiver_through_event_record(tenant, receiver, allow_private):
    from sending import events
    from sending.models import Message, Recipient

    _, secret = make_endpoint(tenant, receiver.url(), events=["bounced"])
    message = Message(tenant=tenant, message_id="m1@mail.dispatch.test", from_address="s@example.com",
                      tags=["welcome"], metadata={"user": "42"})
    recipient = Recipient(tenant=tenant, message=message, email="gone@example.org")
    events.emit("bounced", recipient=recipient, response={"code": 550, "content": "User not found"},
                bounce_classification="InvalidRecipient", bounce_type="hard")
    events.emit("delivered", recipient=recipient)  # not subscribed

    (delivery,) = Delivery.objects.all()
    attempt(delivery)
    (request,) = receiver.requests
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["event"] == "bounced" and payload["recipient"] == "gone@example.org"
    assert (payload["bounce_type"], payload["bounce_classification"]) == ("hard", "InvalidRecipient")
    assert payload["email_id"] == str(message.id) and payload["tags"] == ["welcome"]
    assert payload["metadata"] == {"user": "42"} and payload["sender"] == "s@example.com"
