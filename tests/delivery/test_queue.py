"""The sweeper, the tenant queue view and the operators' queue actions."""
import base64
import json
import os
from datetime import timedelta

import pytest
import redis
from django.utils import timezone

from sending.delivery import services
from sending.models import Message, Recipient

pytestmark = pytest.mark.django_db
S = Recipient.Status


@pytest.fixture
def broker():
    """The Redis list Celery publishes the delivery queue to; emptied around the test."""
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    client.delete("delivery")
    yield client
    client.delete("delivery")


def published(broker):
    """[(task name, recipient ids)] in publishing order."""
    tasks = []
    for raw in reversed(broker.lrange("delivery", 0, -1)):
        envelope = json.loads(raw)
        args, _, _ = json.loads(base64.b64decode(envelope["body"]))
        tasks.append((envelope["headers"]["task"], args[0]))
    return tasks


def test_the_sweeper_enqueues_lost_expired_and_due_rows_only(broker, queue_message):
    now = timezone.now()
    _, [fresh] = queue_message("fresh@dest.test")  # enqueued a moment ago by submit
    _, [lost] = queue_message("lost@dest.test")  # broker was down at submit time
    _, [crashed] = queue_message("crashed@dest.test")  # its worker died
    _, [busy] = queue_message("busy@dest.test")  # a live worker holds it
    _, [due] = queue_message("due@other.test")  # deferred, retry time has come
    _, [later] = queue_message("later@other.test")  # deferred, not yet
    _, [done] = queue_message("done@dest.test")
    Recipient.objects.filter(pk=lost.pk).update(enqueued_at=None)
    Recipient.objects.filter(pk=crashed.pk).update(status=S.SENDING, lease_until=now - timedelta(seconds=1), enqueued_at=now - timedelta(minutes=10))
    Recipient.objects.filter(pk=busy.pk).update(status=S.SENDING, lease_until=now + timedelta(minutes=5))
    Recipient.objects.filter(pk=due.pk).update(status=S.DEFERRED, next_attempt_at=now - timedelta(seconds=1), enqueued_at=now - timedelta(hours=1))
    Recipient.objects.filter(pk=later.pk).update(status=S.DEFERRED, next_attempt_at=now + timedelta(minutes=5), enqueued_at=now - timedelta(hours=1))
    Recipient.objects.filter(pk=done.pk).update(status=S.DELIVERED, enqueued_at=None)

    assert services.sweep() == 3

    tasks = published(broker)
    assert {name for name, _ in tasks} == {"sending.delivery.tasks.deliver_recipients"}
    assert sorted(sorted(ids) for _, ids in tasks) == sorted([sorted([lost.id, crashed.id]), [due.id]])  # one task per domain
    # marked: the next sweep does not enqueue them again
    assert services.sweep() == 0


def test_a_row_enqueued_long_ago_and_still_queued_is_enqueued_again(broker, queue_message):
    _, [stuck] = queue_message("stuck@dest.test")
    Recipient.objects.filter(pk=stuck.pk).update(enqueued_at=timezone.now() - timedelta(minutes=2))
    assert services.sweep() == 1
    assert published(broker) == [("sending.delivery.tasks.deliver_recipients", [stuck.id])]


def test_the_sweeper_splits_big_domains_into_batches(broker, queue_message, settings):
    settings.DISPATCH_DELIVERY_BATCH_SIZE = 2
    ids = [queue_message(f"u{i}@dest.test")[1][0].id for i in range(5)]
    Recipient.objects.filter(id__in=ids).update(enqueued_at=None)
    services.sweep()
    assert [len(batch) for _, batch in published(broker)] == [2, 2, 1]


# --- queue view --------------------------------------------------------------------------------
def queue_url(tenant):
    return f"/api/v1/dispatch/tenants/{tenant.id}/queue"


def test_the_queue_view_counts_pending_sending_and_deferred(api, tenant, queue_message, make_tenant):
    now = timezone.now()
    old, [pending_old] = queue_message("a@dest.test", queued_at=now - timedelta(minutes=10))
    queue_message("b@dest.test")
    _, [sending] = queue_message("c@dest.test")
    _, [deferred] = queue_message("d@dest.test")
    _, [delivered] = queue_message("e@dest.test")
    retry_at = now + timedelta(minutes=3)
    Recipient.objects.filter(pk=sending.pk).update(status=S.SENDING, lease_until=now + timedelta(minutes=1))
    Recipient.objects.filter(pk=deferred.pk).update(status=S.DEFERRED, next_attempt_at=retry_at)
    Recipient.objects.filter(pk=delivered.pk).update(status=S.DELIVERED)
    # another tenant's queue does not count
    from tests.delivery.conftest import make_message, make_signing_domain

    other = make_tenant()
    make_signing_domain(other, "other.example")
    make_message(other, ["x@dest.test"], sender="s@other.example")

    response = api.get(queue_url(tenant))

    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["pending"], data["sending"], data["deferred"]) == (2, 1, 1)
    assert data["next_retry_at"].startswith(retry_at.isoformat()[:19])
    assert 595 <= data["oldest_pending_age_seconds"] <= 700


def test_an_empty_queue(cred_api, tenant):
    data = cred_api.get(queue_url(tenant)).json()["data"]
    assert data == {"pending": 0, "sending": 0, "deferred": 0, "next_retry_at": None, "oldest_pending_age_seconds": None}


def test_another_tenants_queue_is_not_found_and_a_foreign_credential_is_refused(api, other_tenant, other_cred_api, tenant):
    response = api.get(queue_url(other_tenant))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "TENANT_NOT_FOUND"
    response = other_cred_api.get(queue_url(tenant))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "CREDENTIAL_MISMATCH"


def test_the_queue_view_needs_authentication(client, tenant):
    response = client.get(queue_url(tenant))
    assert response.status_code == 401
    assert "error" in response.json()


# --- operators ----------------------------------------------------------------------------------
def test_retry_now_makes_deferred_rows_due_and_enqueues_them(broker, queue_message, django_capture_on_commit_callbacks):
    _, [deferred] = queue_message("d@dest.test")
    _, [delivered] = queue_message("e@dest.test")
    Recipient.objects.filter(pk=deferred.pk).update(status=S.DEFERRED, next_attempt_at=timezone.now() + timedelta(hours=1))
    Recipient.objects.filter(pk=delivered.pk).update(status=S.DELIVERED)

    with django_capture_on_commit_callbacks(execute=True):
        assert services.recipients_retry_now(recipient_ids=[deferred.id, delivered.id]) == 1

    deferred.refresh_from_db()
    assert deferred.next_attempt_at <= timezone.now()
    assert published(broker) == [("sending.delivery.tasks.deliver_recipients", [deferred.id])]


def test_fail_gives_up_on_waiting_rows_only(queue_message):
    from webhooks.models import Event

    message, [waiting] = queue_message("w@dest.test")
    _, [busy] = queue_message("b@dest.test")
    Recipient.objects.filter(pk=busy.pk).update(status=S.SENDING, lease_until=timezone.now() + timedelta(minutes=5))

    assert services.recipients_fail(recipient_ids=[waiting.id, busy.id]) == 1

    waiting.refresh_from_db()
    assert waiting.status == S.FAILED and waiting.failed_at is not None
    message.refresh_from_db()
    assert message.status == Message.Status.FAILED
    assert Event.objects.filter(type="failed", payload__recipient="w@dest.test").exists()


def test_the_admin_lists_the_global_queue_and_runs_the_actions(admin_client, queue_message):
    _, [waiting] = queue_message("w@dest.test")
    url = "/admin/sending/queuedrecipient/"
    response = admin_client.get(url)
    assert response.status_code == 200
    assert b"w@dest.test" in response.content

    response = admin_client.post(url, {"action": "fail", "_selected_action": [waiting.id]}, follow=True)
    assert response.status_code == 200
    waiting.refresh_from_db()
    assert waiting.status == S.FAILED


def test_a_message_sent_through_the_api_is_published_by_name_and_delivered(
    api, tenant, signing_domain, mx, broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            f"/api/v1/dispatch/tenants/{tenant.id}/send",
            {"from": "news@example.com", "to": ["alice@dest.test"], "subject": "Hi", "text_body": "Hello"},
            format="json",
        )
    assert response.status_code == 200, response.content
    [(name, ids)] = published(broker)
    assert name == "sending.delivery.tasks.deliver_recipients"

    services.deliver_recipients(recipient_ids=ids)  # what the task runs (a real worker runs it in test_worker_faults)

    [received] = mx.messages
    assert received.rcpt_tos == ["alice@dest.test"]
    message = Message.objects.get(tenant=tenant)
    assert message.status == Message.Status.DELIVERED
