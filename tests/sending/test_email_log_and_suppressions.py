"""GET/DELETE .../emails and POST/GET/DELETE .../suppressions."""
import base64
from datetime import timedelta

import pytest
from django.utils import timezone

from sending.models import DeliveryAttempt, Message, Recipient, Suppression

from .conftest import message_payload
from .test_send_api import assert_error

pytestmark = pytest.mark.django_db

SUMMARY_FIELDS = {
    "id", "message_id", "from_address", "to_addresses", "subject", "body_size_bytes", "has_attachments", "status",
    "bounce_type", "queued_at", "delivered_at", "bounced_at", "expires_at",
}


@pytest.fixture
def emails_url(tenant):
    return f"/api/v1/dispatch/tenants/{tenant.id}/emails"


@pytest.fixture
def suppressions_url(tenant):
    return f"/api/v1/dispatch/tenants/{tenant.id}/suppressions"


def send(api, send_url, **overrides):
    response = api.post(send_url, message_payload(**overrides), format="json")
    assert response.status_code == 200, response.content
    return Message.objects.get(pk=response.json()["data"]["id"])


def test_the_log_lists_newest_first_with_the_spec_fields(api, send_url, emails_url, verified_domain):
    first = send(api, send_url, subject="First")
    second = send(api, send_url, subject="Second")
    Message.objects.filter(pk=first.pk).update(queued_at=timezone.now() - timedelta(minutes=5))
    response = api.get(emails_url)
    assert response.status_code == 200
    body = response.json()
    assert [e["subject"] for e in body["data"]] == ["Second", "First"]
    assert SUMMARY_FIELDS <= set(body["data"][0])
    assert "html_body" not in body["data"][0]
    assert body["pagination"] == {"total": 2, "page": 1, "limit": 50, "total_pages": 1}
    entry = body["data"][0]
    assert entry["id"] == str(second.id) and entry["status"] == "queued" and entry["to_addresses"] == ["alice@example.org"]
    assert entry["queued_at"].endswith("Z") and entry["delivered_at"] is None


def test_the_log_paginates(api, send_url, emails_url, verified_domain):
    for i in range(5):
        send(api, send_url, subject=f"S{i}")
    body = api.get(emails_url, {"page": 2, "limit": 2}).json()
    assert body["pagination"] == {"total": 5, "page": 2, "limit": 2, "total_pages": 3}
    assert len(body["data"]) == 2
    assert_error(api.get(emails_url, {"limit": 101}), 400, "VALIDATION_ERROR")
    assert_error(api.get(emails_url, {"page": 0}), 400, "VALIDATION_ERROR")


def test_the_log_filters(api, send_url, emails_url, verified_domain):
    a = send(api, send_url, to=["a@example.org"], tags=["welcome"])
    b = send(api, send_url, to=["b@example.org"], bcc=["hidden@example.org"], tags=["invoice"])
    Message.objects.filter(pk=b.pk).update(status="delivered", queued_at=timezone.now() - timedelta(days=3))

    def ids(**params):
        response = api.get(emails_url, params)
        assert response.status_code == 200, response.content
        return {e["id"] for e in response.json()["data"]}

    assert ids(status="delivered") == {str(b.id)}
    assert ids(status="queued") == {str(a.id)}
    assert ids(recipient="A@example.org") == {str(a.id)}
    assert ids(recipient="hidden@example.org") == {str(b.id)}
    assert ids(tag="welcome") == {str(a.id)}
    day = (timezone.now() - timedelta(days=3)).date().isoformat()
    assert ids(date_from=day, date_to=day) == {str(b.id)}
    assert ids(date_from=(timezone.now() - timedelta(days=1)).isoformat()) == {str(a.id)}
    assert_error(api.get(emails_url, {"status": "nope"}), 400, "VALIDATION_ERROR")
    assert_error(api.get(emails_url, {"date_from": "yesterday"}), 400, "VALIDATION_ERROR")


def test_the_detail_has_the_decrypted_body_headers_recipients_and_attempts(api, send_url, emails_url, verified_domain):
    message = send(
        api, send_url, to=["a@example.org"], bcc=["b@example.org"], metadata={"k": "v"},
        attachments=[{"filename": "r.pdf", "content_type": "application/pdf", "content": base64.b64encode(b"%PDF").decode()}],
    )
    recipient = message.recipients.get(email="b@example.org")
    Recipient.objects.filter(pk=recipient.pk).update(
        status="bounced", bounce_type="hard", bounce_class="InvalidRecipient", attempts=1,
        last_response_code=550, last_enhanced_status="5.1.1", last_response_text="User unknown",
    )
    DeliveryAttempt.objects.create(
        tenant=message.tenant, recipient=recipient, mx_host="mx.example.org", remote_ip="192.0.2.1",
        response_code=550, enhanced_status="5.1.1", response_text="User unknown", outcome="bounced",
    )
    response = api.get(f"{emails_url}/{message.id}")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["html_body"].strip() == "<p>Hi Alice</p>" and data["text_body"].strip() == "Hi Alice"
    assert ["Subject", "Hello"] in data["headers"]
    assert data["attachments"] == [{"filename": "r.pdf", "content_type": "application/pdf", "size_bytes": 4, "inline": False, "content_id": None}]
    assert data["metadata"] == {"k": "v"} and data["bcc_count"] == 1
    by_email = {r["email"]: r for r in data["recipients"]}
    assert by_email["a@example.org"]["status"] == "queued" and by_email["a@example.org"]["delivery_attempts"] == []
    bounced = by_email["b@example.org"]
    assert bounced["kind"] == "bcc" and bounced["bounce"] == {"type": "hard", "classification": "InvalidRecipient"}
    assert bounced["last_response"] == {"code": 550, "enhanced_status": "5.1.1", "content": "User unknown"}
    assert bounced["delivery_attempts"][0]["mx_host"] == "mx.example.org"
    assert bounced["delivery_attempts"][0]["response"]["code"] == 550


def test_delete_erases_the_body_and_keeps_the_metadata(api, send_url, emails_url, verified_domain):
    message = send(api, send_url)
    response = api.delete(f"{emails_url}/{message.id}")
    assert response.status_code == 200
    message.refresh_from_db()
    assert message.body is None and message.body_erased_at is not None
    data = api.get(f"{emails_url}/{message.id}").json()["data"]
    assert data["html_body"] is None and data["text_body"] is None and data["headers"] is None
    assert data["subject"] == "Hello" and data["recipients"][0]["email"] == "alice@example.org"
    assert data["body_erased_at"] is not None
    assert api.get(emails_url).json()["pagination"]["total"] == 1


def test_the_log_is_tenant_scoped(api, other_api, other_cred_api, send_url, emails_url, verified_domain, other_tenant):
    message = send(api, send_url)
    other_log = f"/api/v1/dispatch/tenants/{other_tenant.id}/emails"
    assert other_api.get(other_log).json()["data"] == []
    assert_error(other_api.get(f"{other_log}/{message.id}"), 404, "EMAIL_NOT_FOUND")
    assert_error(other_api.delete(f"{other_log}/{message.id}"), 404, "EMAIL_NOT_FOUND")
    assert_error(other_api.get(emails_url), 404, "TENANT_NOT_FOUND")
    assert_error(other_cred_api.get(f"{emails_url}/{message.id}"), 403, "CREDENTIAL_MISMATCH")
    message.refresh_from_db()
    assert message.body is not None


def test_unknown_email_is_404(api, emails_url):
    assert_error(api.get(f"{emails_url}/00000000-0000-0000-0000-000000000000"), 404, "EMAIL_NOT_FOUND")


# --- suppressions --------------------------------------------------------------------------------
def test_add_list_and_remove_a_suppression(api, suppressions_url):
    response = api.post(suppressions_url, {"email": "Bob@Example.ORG", "reason": "User requested removal"}, format="json")
    assert response.status_code == 201
    data = response.json()["data"]
    assert data["email"] == "bob@example.org" and data["reason"] == "User requested removal" and data["source"] == "manual"
    listed = api.get(suppressions_url, {"limit": 10, "offset": 0}).json()
    assert [s["id"] for s in listed["data"]] == [data["id"]]
    assert listed["pagination"] == {"total": 1, "limit": 10, "offset": 0}
    assert api.delete(f"{suppressions_url}/{data['id']}").status_code == 200
    assert not Suppression.objects.exists()
    assert_error(api.delete(f"{suppressions_url}/{data['id']}"), 404, "SUPPRESSION_NOT_FOUND")


def test_adding_an_existing_address_returns_the_existing_entry(api, suppressions_url):
    first = api.post(suppressions_url, {"email": "bob@example.org", "reason": "first"}, format="json").json()["data"]
    again = api.post(suppressions_url, {"email": "BOB@example.org", "reason": "second"}, format="json")
    assert again.status_code == 200
    assert again.json()["data"]["id"] == first["id"] and again.json()["data"]["reason"] == "first"
    assert Suppression.objects.count() == 1


def test_suppression_search_and_pagination(api, suppressions_url, tenant):
    for i in range(5):
        Suppression.objects.create(tenant=tenant, email=f"user{i}@example.org")
    Suppression.objects.create(tenant=tenant, email="special@other.example")
    assert [s["email"] for s in api.get(suppressions_url, {"search": "Special"}).json()["data"]] == ["special@other.example"]
    page = api.get(suppressions_url, {"limit": 2, "offset": 4}).json()
    assert page["pagination"] == {"total": 6, "limit": 2, "offset": 4} and len(page["data"]) == 2
    assert_error(api.get(suppressions_url, {"limit": 101}), 400, "VALIDATION_ERROR")


@pytest.mark.parametrize("body", [{}, {"email": "not-an-address"}, {"email": 5}, {"email": "a@example.org", "reason": 5},
                                  {"email": "a@example.org\r\nx"}])
def test_invalid_suppressions_are_refused(api, suppressions_url, body):
    response = api.post(suppressions_url, body, format="json")
    assert response.status_code == 400, response.content
    assert not Suppression.objects.exists()


def test_suppressions_are_tenant_scoped(api, other_api, other_cred_api, suppressions_url, other_tenant, tenant):
    entry = Suppression.objects.create(tenant=tenant, email="bob@example.org")
    other_url = f"/api/v1/dispatch/tenants/{other_tenant.id}/suppressions"
    assert other_api.get(other_url).json()["data"] == []
    assert_error(other_api.delete(f"{other_url}/{entry.id}"), 404, "SUPPRESSION_NOT_FOUND")
    assert_error(other_cred_api.get(suppressions_url), 403, "CREDENTIAL_MISMATCH")
    assert_error(other_api.post(suppressions_url, {"email": "x@example.org"}, format="json"), 404, "TENANT_NOT_FOUND")
    # The same address may be suppressed independently by another tenant.
    assert other_api.post(other_url, {"email": "bob@example.org"}, format="json").status_code == 201
    assert Suppression.objects.filter(email="bob@example.org").count() == 2


def test_is_suppressed_matches_case_and_idn_forms(tenant):
    from sending.suppressions import is_suppressed, suppression_add

    suppression_add(tenant=tenant, email="Max@Bücher.de", source="bounce")
    assert Suppression.objects.get().email == "max@xn--bcher-kva.de"
    assert is_suppressed(tenant=tenant, email="MAX@xn--bcher-kva.de")
    assert is_suppressed(tenant=tenant, email="max@bücher.de")
    assert not is_suppressed(tenant=tenant, email="other@bücher.de")
    assert not is_suppressed(tenant=tenant, email="not an address")
