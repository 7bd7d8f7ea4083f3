import uuid
from unittest import mock

import pytest
from django.db import transaction
from standardwebhooks import Webhook

from webhooks import services
from webhooks.models import Delivery, Endpoint, Event

pytestmark = pytest.mark.django_db


def base(tenant):
    return f"/api/v1/dispatch/tenants/{tenant.id}/webhooks"


def register(client, tenant, **fields):
    body = {"url": "https://hooks.example.com/dispatch", "events": ["delivered", "bounced"], **fields}
    response = client.post(base(tenant), body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["data"]


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    return error


@pytest.fixture(autouse=True)
def no_broker():
    """Deliveries are attempted explicitly in these tests; nothing is sent to the broker."""
    with mock.patch("webhooks.tasks.deliver_webhook.apply_async") as send:
        yield send


def test_register_returns_the_generated_secret_once(api, tenant):
    data = register(api, tenant)
    assert data["secret"].startswith("whsec_") and "not be shown again" in data["note"]
    assert data["url"] == "https://hooks.example.com/dispatch" and data["events"] == ["delivered", "bounced"]
    assert data["enabled"] is True and data["disabled_reason"] is None
    listed = api.get(base(tenant)).json()["data"]
    assert [w["id"] for w in listed] == [data["id"]]
    shown = api.get(f"{base(tenant)}/{data['id']}").json()["data"]
    assert "secret" not in shown and data["secret"] not in str(listed) + str(shown)


def test_register_with_a_given_secret(cred_api, tenant):
    secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="
    data = register(cred_api, tenant, secret=secret)
    assert data["secret"] == secret
    assert services.endpoint_secret(Endpoint.objects.get(pk=data["id"])) == secret


@pytest.mark.parametrize("body,field", [
    ({"url": "https://hooks.example.com/", "events": []}, "events"),
    ({"url": "https://hooks.example.com/", "events": ["opened"]}, "events"),
    ({"url": "https://hooks.example.com/"}, "events"),
    ({"events": ["delivered"]}, "url"),
    ({"url": "http://127.0.0.1/", "events": ["delivered"]}, "url"),
    ({"url": "http://2130706433/", "events": ["delivered"]}, "url"),
    ({"url": "javascript:alert(1)", "events": ["delivered"]}, "url"),
    ({"url": "https://hooks.example.com/", "events": ["delivered"], "secret": "short"}, "secret"),
    ({"url": "https://hooks.example.com/", "events": ["delivered"], "secret": "whsec_not*base64*at*all*!!"}, "secret"),
    ({"url": "https://hooks.example.com/", "events": ["delivered"], "secret": "whsec_c2hvcnQ="}, "secret"),
])
def test_invalid_registrations_are_400_with_field_details(api, tenant, body, field):
    error = assert_error(api.post(base(tenant), body, format="json"), 400, "VALIDATION_ERROR")
    assert field in error["details"]
    assert not Endpoint.objects.exists()


def test_a_tenant_has_at_most_twenty_webhooks(api, tenant):
    for number in range(services.MAX_ENDPOINTS_PER_TENANT):
        services.endpoint_create(tenant=tenant, url=f"https://h{number}.example.com/", events=["sent"])
    response = api.post(base(tenant), {"url": "https://one-more.example.com/", "events": ["sent"]}, format="json")
    assert_error(response, 409, "TOO_MANY_WEBHOOKS")


def test_all_documented_events_can_be_subscribed(api, tenant):
    events = ["sent", "delivered", "bounced", "complained", "deferred", "failed", "suppressed", "unsubscribed",
              "domain.verified", "domain.failed"]
    assert register(api, tenant, events=events)["events"] == events


def test_patch_changes_url_events_and_enabled(api, tenant):
    webhook = register(api, tenant)
    url = f"{base(tenant)}/{webhook['id']}"
    response = api.patch(url, {"url": "https://other.example.com/in", "events": ["complained"]}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["data"]["url"] == "https://other.example.com/in"
    assert response.json()["data"]["events"] == ["complained"]

    assert api.patch(url, {"enabled": False}, format="json").json()["data"]["enabled"] is False
    assert api.patch(url, {"enabled": True}, format="json").json()["data"]["enabled"] is True
    assert_error(api.patch(url, {"url": "http://[::1]/"}, format="json"), 400, "VALIDATION_ERROR")
    assert Endpoint.objects.get(pk=webhook["id"]).url == "https://other.example.com/in"


def test_reenabling_clears_the_reason_we_disabled_it_for(api, tenant):
    webhook = register(api, tenant)
    endpoint = Endpoint.objects.get(pk=webhook["id"])
    services.endpoint_disable(endpoint=endpoint, reason="The endpoint answered 410 Gone.")
    shown = api.get(f"{base(tenant)}/{webhook['id']}").json()["data"]
    assert shown["enabled"] is False and shown["disabled_reason"] == "The endpoint answered 410 Gone."
    shown = api.patch(f"{base(tenant)}/{webhook['id']}", {"enabled": True}, format="json").json()["data"]
    assert shown["enabled"] is True and shown["disabled_reason"] is None and shown["failing_since"] is None


def test_delete_removes_the_endpoint_and_its_deliveries(api, tenant):
    webhook = register(api, tenant)
    services.event_record(tenant=tenant, event="delivered", payload={})
    response = api.delete(f"{base(tenant)}/{webhook['id']}")
    assert response.status_code == 200
    assert not Endpoint.objects.exists() and not Delivery.objects.exists()
    assert Event.objects.count() == 1
    assert_error(api.get(f"{base(tenant)}/{webhook['id']}"), 404, "WEBHOOK_NOT_FOUND")


def test_test_event_reaches_the_receiver_signed(api, tenant, receiver, allow_private, no_broker):
    webhook = register(api, tenant, url=receiver.url())
    with mock.patch.object(transaction, "on_commit", side_effect=lambda fn, *a, **k: fn()):
        response = api.post(f"{base(tenant)}/{webhook['id']}/test")
    assert response.status_code == 202, response.content
    queued = response.json()["data"]
    assert queued["event"] == "webhook.test" and queued["status"] == "pending"
    no_broker.assert_called_once_with(args=[queued["id"]], retry=False)

    services.delivery_attempt(delivery_id=queued["id"])

    (request,) = receiver.requests
    assert Webhook(webhook["secret"]).verify(request.body, request.headers)["event"] == "webhook.test"
    # Test events go to this endpoint only and are not subscribed events.
    assert Delivery.objects.count() == 1


def test_test_on_a_disabled_endpoint_is_409(api, tenant):
    webhook = register(api, tenant)
    api.patch(f"{base(tenant)}/{webhook['id']}", {"enabled": False}, format="json")
    assert_error(api.post(f"{base(tenant)}/{webhook['id']}/test"), 409, "WEBHOOK_DISABLED")


def test_delivery_log_shows_status_code_attempts_and_next_retry(api, tenant, receiver, allow_private):
    webhook = register(api, tenant, url=receiver.url())
    receiver.reply(500)
    for _ in range(3):
        services.event_record(tenant=tenant, event="delivered", payload={"recipient": "a@example.org"})
    first = Delivery.objects.order_by("created_at").first()
    services.delivery_attempt(delivery_id=first.pk)

    response = api.get(f"{base(tenant)}/{webhook['id']}/deliveries?limit=2&page=1")

    assert response.status_code == 200
    body = response.json()
    assert body["pagination"] == {"total": 3, "page": 1, "limit": 2, "total_pages": 2}
    failed = api.get(f"{base(tenant)}/{webhook['id']}/deliveries?status=failed").json()["data"]
    (row,) = failed
    assert row["id"] == str(first.pk) and row["event"] == "delivered"
    assert (row["attempts"], row["response_code"]) == (1, 500)
    assert row["next_attempt_at"].endswith("Z") and row["webhook_id"].startswith("msg_")
    assert_error(api.get(f"{base(tenant)}/{webhook['id']}/deliveries?status=bogus"), 400, "VALIDATION_ERROR")
    assert_error(api.get(f"{base(tenant)}/{webhook['id']}/deliveries?limit=1000"), 400, "VALIDATION_ERROR")


def test_replay_sends_an_exhausted_delivery_again_with_the_same_id(api, tenant, receiver, allow_private):
    webhook = register(api, tenant, url=receiver.url())
    receiver.reply(500)
    services.event_record(tenant=tenant, event="delivered", payload={})
    delivery = Delivery.objects.get()
    Delivery.objects.filter(pk=delivery.pk).update(attempts=len(services.RETRY_DELAYS) - 1)
    assert services.delivery_attempt(delivery_id=delivery.pk).status == "exhausted"

    response = api.post(f"{base(tenant)}/{webhook['id']}/deliveries/{delivery.pk}/replay")

    assert response.status_code == 202, response.content
    assert response.json()["data"]["status"] == "pending" and response.json()["data"]["attempts"] == 0
    assert services.delivery_attempt(delivery_id=delivery.pk).status == "succeeded"
    assert [r.headers["webhook-id"] for r in receiver.requests] == [delivery.webhook_id] * 2


def test_replay_on_a_disabled_endpoint_is_409(api, tenant):
    webhook = register(api, tenant)
    services.event_record(tenant=tenant, event="delivered", payload={})
    delivery = Delivery.objects.get()
    api.patch(f"{base(tenant)}/{webhook['id']}", {"enabled": False}, format="json")
    assert_error(api.post(f"{base(tenant)}/{webhook['id']}/deliveries/{delivery.pk}/replay"), 409, "WEBHOOK_DISABLED")


def test_a_delivery_is_only_reachable_under_its_own_endpoint(api, tenant):
    first = register(api, tenant)
    second = register(api, tenant, events=["complained"])
    services.event_record(tenant=tenant, event="delivered", payload={})
    delivery = Delivery.objects.get()
    response = api.post(f"{base(tenant)}/{second['id']}/deliveries/{delivery.pk}/replay")
    assert_error(response, 404, "DELIVERY_NOT_FOUND")
    assert api.post(f"{base(tenant)}/{first['id']}/deliveries/{delivery.pk}/replay").status_code == 202


def _all_routes(tenant, webhook_id, delivery_id):
    root = base(tenant)
    return [
        ("get", root, None),
        ("post", root, {"url": "https://evil.example.com/", "events": ["delivered"]}),
        ("get", f"{root}/{webhook_id}", None),
        ("patch", f"{root}/{webhook_id}", {"url": "https://evil.example.com/"}),
        ("delete", f"{root}/{webhook_id}", None),
        ("post", f"{root}/{webhook_id}/test", None),
        ("get", f"{root}/{webhook_id}/deliveries", None),
        ("post", f"{root}/{webhook_id}/deliveries/{delivery_id}/replay", None),
    ]


def _call(client, method, url, body):
    return getattr(client, method)(url, body, format="json") if body is not None else getattr(client, method)(url)


def test_cross_tenant_access_is_404_for_users_and_403_for_credentials(api, tenant, other_api, other_cred_api):
    webhook = register(api, tenant)
    services.event_record(tenant=tenant, event="delivered", payload={})
    delivery = Delivery.objects.get()
    for method, url, body in _all_routes(tenant, webhook["id"], delivery.pk):
        assert_error(_call(other_api, method, url, body), 404, "TENANT_NOT_FOUND")
        assert_error(_call(other_cred_api, method, url, body), 403, "CREDENTIAL_MISMATCH")
    endpoint = Endpoint.objects.get()
    assert (endpoint.url, endpoint.enabled, Endpoint.objects.count()) == ("https://hooks.example.com/dispatch", True, 1)
    assert Delivery.objects.get().status == "pending"


def test_another_tenants_webhook_ids_are_404_under_your_own_tenant(api, tenant, other_api, other_tenant):
    webhook = register(api, tenant)
    services.event_record(tenant=tenant, event="delivered", payload={})
    delivery = Delivery.objects.get()
    for method, url, body in _all_routes(other_tenant, webhook["id"], delivery.pk)[2:]:
        assert_error(_call(other_api, method, url, body), 404, "WEBHOOK_NOT_FOUND")
    assert Endpoint.objects.get().url == "https://hooks.example.com/dispatch"


def test_unknown_ids_and_anonymous_requests(api, tenant, client):
    assert_error(api.get(f"{base(tenant)}/{uuid.uuid4()}"), 404, "WEBHOOK_NOT_FOUND")
    webhook = register(api, tenant)
    response = api.post(f"{base(tenant)}/{webhook['id']}/deliveries/{uuid.uuid4()}/replay")
    assert_error(response, 404, "DELIVERY_NOT_FOUND")
    assert_error(client.get(base(tenant)), 401, "UNAUTHORIZED")
