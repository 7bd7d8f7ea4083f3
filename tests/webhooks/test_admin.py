import pytest

from webhooks import services
from webhooks.models import Delivery

pytestmark = pytest.mark.django_db


def test_operators_see_disabled_endpoints_and_their_reason(admin_client, tenant):
    endpoint, secret = services.endpoint_create(tenant=tenant, url="https://hooks.example.com/x", events=["delivered"])
    services.endpoint_disable(endpoint=endpoint, reason="The endpoint answered 410 Gone.")
    listing = admin_client.get("/admin/webhooks/endpoint/?enabled__exact=0")
    assert listing.status_code == 200
    assert b"https://hooks.example.com/x" in listing.content and b"410 Gone" in listing.content
    page = admin_client.get(f"/admin/webhooks/endpoint/{endpoint.pk}/change/")
    assert page.status_code == 200 and secret.encode() not in page.content


def test_failed_deliveries_can_be_replayed_from_the_admin(admin_client, tenant):
    services.endpoint_create(tenant=tenant, url="https://hooks.example.com/x", events=["delivered"])
    services.event_record(tenant=tenant, event="delivered", payload={"recipient": "a@example.org"})
    delivery = Delivery.objects.get()
    Delivery.objects.filter(pk=delivery.pk).update(status="exhausted", attempts=10, next_attempt_at=None)

    listing = admin_client.get("/admin/webhooks/delivery/?outcome=failed")
    assert listing.status_code == 200 and delivery.webhook_id.encode() in listing.content
    response = admin_client.post(
        "/admin/webhooks/delivery/", {"action": "replay", "_selected_action": [str(delivery.pk)]}, follow=True
    )

    assert response.status_code == 200 and b"1 delivery(ies) queued again" in response.content
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 0) and delivery.next_attempt_at is not None
