"""Idempotency-Key on /send (including concurrent requests) and /send-bulk."""
from datetime import timedelta

import pytest

from sending.models import IdempotencyKey, Message, Suppression
from tests.support.concurrency import run_concurrently

from .conftest import message_payload
from .test_send_api import assert_error

pytestmark = pytest.mark.django_db


def test_same_key_and_body_returns_the_first_response(api, send_url, verified_domain):
    first = api.post(send_url, message_payload(), format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    second = api.post(send_url, message_payload(), format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert second["Idempotent-Replayed"] == "true"
    assert Message.objects.count() == 1


def test_key_order_in_the_body_does_not_matter(api, send_url, verified_domain):
    payload = message_payload()
    api.post(send_url, payload, format="json", HTTP_IDEMPOTENCY_KEY="k")
    reordered = dict(reversed(list(payload.items())))
    assert api.post(send_url, reordered, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 200
    assert Message.objects.count() == 1


def test_same_key_with_another_body_is_a_conflict(api, send_url, verified_domain):
    api.post(send_url, message_payload(), format="json", HTTP_IDEMPOTENCY_KEY="order-2")
    response = api.post(send_url, message_payload(subject="Different"), format="json", HTTP_IDEMPOTENCY_KEY="order-2")
    assert_error(response, 409, "IDEMPOTENCY_KEY_REUSED")
    assert Message.objects.count() == 1


def test_keys_expire_after_24_hours(api, send_url, verified_domain):
    api.post(send_url, message_payload(), format="json", HTTP_IDEMPOTENCY_KEY="old")
    IdempotencyKey.objects.update(created_at=IdempotencyKey.objects.get().created_at - timedelta(hours=25))
    response = api.post(send_url, message_payload(subject="New"), format="json", HTTP_IDEMPOTENCY_KEY="old")
    assert response.status_code == 200
    assert Message.objects.count() == 2


def test_keys_are_per_tenant(api, other_api, send_url, verified_domain, other_tenant):
    from .conftest import make_verified_domain

    make_verified_domain(other_tenant, "other.example")
    api.post(send_url, message_payload(), format="json", HTTP_IDEMPOTENCY_KEY="shared")
    response = other_api.post(
        f"/api/v1/dispatch/tenants/{other_tenant.id}/send", message_payload(**{"from": "x@other.example"}),
        format="json", HTTP_IDEMPOTENCY_KEY="shared",
    )
    assert response.status_code == 200
    assert Message.objects.count() == 2


def test_a_failed_request_does_not_consume_the_key(api, send_url, verified_domain):
    bad = api.post(send_url, message_payload(**{"from": "x@unverified.example"}), format="json", HTTP_IDEMPOTENCY_KEY="retry")
    assert bad.status_code == 400
    good = api.post(send_url, message_payload(**{"from": "x@unverified.example"}), format="json", HTTP_IDEMPOTENCY_KEY="retry")
    assert good.status_code == 400  # same answer, recomputed: errors are not stored
    assert not IdempotencyKey.objects.exists()


def test_invalid_idempotency_keys_are_refused(api, send_url, verified_domain):
    assert_error(api.post(send_url, message_payload(), format="json", HTTP_IDEMPOTENCY_KEY="x" * 256), 400, "VALIDATION_ERROR")
    assert_error(api.post(send_url, message_payload(), format="json", HTTP_IDEMPOTENCY_KEY=""), 400, "VALIDATION_ERROR")


@pytest.mark.django_db(transaction=True)
def test_concurrent_identical_requests_create_one_message(user, tenant, verified_domain, send_url):
    from tests.conftest import jwt_client

    clients = [jwt_client(user) for _ in range(4)]
    responses = run_concurrently(
        4, lambda index: clients[index].post(send_url, message_payload(), format="json", HTTP_IDEMPOTENCY_KEY="race"))
    assert [getattr(r, "status_code", r) for r in responses] == [200] * 4, responses
    assert len({r.json()["data"]["id"] for r in responses}) == 1
    assert Message.objects.count() == 1
    # The requests that lost the race gave their quota back.
    from tenants.models import UsageCounter

    assert UsageCounter.objects.get(tenant=tenant).emails_sent == 1


# --- send-bulk ----------------------------------------------------------------------------------
def test_bulk_reports_each_message_and_one_failure_does_not_fail_the_others(api, bulk_url, verified_domain, tenant):
    Suppression.objects.create(tenant=tenant, email="gone@example.org")
    messages = [
        message_payload(to=["a@example.org"], subject="A"),
        message_payload(**{"from": "x@unverified.example"}),
        message_payload(to=["b@example.org", "c@example.org"], subject="B"),
        message_payload(to=["gone@example.org"]),
        {"from": "sender@example.com", "to": "not-a-list-but-ok@example.org", "subject": "C", "text_body": "c"},
        "not an object",
        message_payload(attachments=[{"filename": "a", "content_type": "text/plain", "content": "%%%"}]),
    ]
    response = api.post(bulk_url, {"messages": messages}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["message"] == "3 email(s) queued, 4 failed"
    assert body["data"]["sent"] == 3 and body["data"]["failed"] == 4
    results = body["data"]["results"]
    assert [r["index"] for r in results] == list(range(7))
    assert [r["success"] for r in results] == [True, False, True, False, True, False, False]
    assert results[0]["message"] == "1 recipient(s) queued"
    assert results[2]["message"] == "2 recipient(s) queued"
    assert results[1]["code"] == "DOMAIN_NOT_VERIFIED"
    assert results[3]["code"] == "RECIPIENT_SUPPRESSED"
    assert results[5]["code"] == "VALIDATION_ERROR"
    assert "base64" in results[6]["message"]
    assert Message.objects.count() == 3
    assert set(Message.objects.values_list("subject", flat=True)) == {"A", "B", "C"}
    assert {r["id"] for r in results if r["success"]} == {str(i) for i in Message.objects.values_list("id", flat=True)}


def test_bulk_refuses_more_than_100_messages(api, bulk_url, verified_domain):
    response = api.post(bulk_url, {"messages": [message_payload()] * 101}, format="json")
    assert_error(response, 400, "VALIDATION_ERROR")
    assert not Message.objects.exists()


@pytest.mark.parametrize("body", [{}, {"messages": []}, {"messages": "x"}, [1]])
def test_bulk_needs_a_list_of_messages(api, bulk_url, verified_domain, body):
    assert_error(api.post(bulk_url, body, format="json"), 400, "VALIDATION_ERROR")


def test_bulk_accepts_100_messages(api, bulk_url, verified_domain):
    messages = [message_payload(to=[f"r{i}@example.org"], subject=f"S{i}") for i in range(100)]
    response = api.post(bulk_url, {"messages": messages}, format="json")
    assert response.json()["data"]["sent"] == 100
    assert Message.objects.count() == 100


def test_bulk_quota_fails_only_the_messages_over_it(api, bulk_url, verified_domain, tenant):
    plan = tenant.plan
    plan.monthly_quota = 3
    plan.save()
    tenant.overage_enabled = False
    tenant.save()
    messages = [message_payload(to=["a@example.org", "b@example.org"]), message_payload(to=["c@example.org", "d@example.org"]),
                message_payload(to=["e@example.org"])]
    body = api.post(bulk_url, {"messages": messages}, format="json").json()
    assert [r["success"] for r in body["data"]["results"]] == [True, False, True]
    assert body["data"]["results"][1]["code"] == "QUOTA_EXCEEDED"
    assert body["data"]["results"][1]["message"] == "Monthly quota exceeded (2/3). Enable overage or upgrade plan."
    # The refused message left nothing behind: no rows, no events.
    from webhooks.models import Event

    assert sorted(Message.objects.values_list("recipients__email", flat=True)) == ["a@example.org", "b@example.org", "e@example.org"]
    assert sorted(e.payload["recipient"] for e in Event.objects.filter(tenant=tenant)) == ["a@example.org", "b@example.org", "e@example.org"]


def test_bulk_cross_tenant(other_cred_api, other_api, bulk_url, verified_domain):
    assert_error(other_cred_api.post(bulk_url, {"messages": [message_payload()]}, format="json"), 403, "CREDENTIAL_MISMATCH")
    assert_error(other_api.post(bulk_url, {"messages": [message_payload()]}, format="json"), 404, "TENANT_NOT_FOUND")
    assert not Message.objects.exists()


def test_old_idempotency_keys_are_pruned(api, send_url, verified_domain):
    from django.utils import timezone

    from sending.services import idempotency_keys_prune

    api.post(send_url, message_payload(), format="json", HTTP_IDEMPOTENCY_KEY="a")
    api.post(send_url, message_payload(subject="b"), format="json", HTTP_IDEMPOTENCY_KEY="b")
    IdempotencyKey.objects.filter(key="a").update(created_at=timezone.now() - timedelta(hours=25))
    assert idempotency_keys_prune() == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["b"]
