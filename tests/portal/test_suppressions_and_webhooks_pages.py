import re

import pytest

from sending.models import Suppression
from sending.suppressions import suppression_add
from webhooks.models import Delivery, Endpoint
from webhooks.services import endpoint_create, endpoint_disable

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _webhooks_may_use_loopback(settings):
    settings.DISPATCH_WEBHOOK_ALLOW_PRIVATE = True


def test_suppressions_search_add_and_remove(browser, page, tenant):
    suppression_add(tenant=tenant, email="bounced@example.org", reason="550 5.1.1", source="bounce")
    r = browser.post(page("suppressions"), {"email": "Manual@Example.ORG", "reason": "asked us"}, follow=True)
    assert b"manual@example.org added" in r.content
    r = browser.post(page("suppressions"), {"email": "manual@example.org"}, follow=True)
    assert b"already on the list" in r.content
    r = browser.post(page("suppressions"), {"email": "not an address"})
    assert r.status_code == 200 and 'class="error"' in r.content.decode()

    html = browser.get(page("suppressions"), {"q": "bounced"}).content.decode()
    assert "bounced@example.org" in html and "manual@example.org" not in html

    manual = Suppression.objects.get(email="manual@example.org")
    r = browser.post(page(f"suppressions/{manual.id}/remove"), follow=True)
    assert b"removed" in r.content and not Suppression.objects.filter(pk=manual.pk).exists()


def test_another_tenants_suppression_is_not_found(browser, page, other_tenant):
    foreign, _ = suppression_add(tenant=other_tenant, email="x@example.org")
    assert browser.post(page(f"suppressions/{foreign.id}/remove")).status_code == 404
    assert Suppression.objects.filter(pk=foreign.pk).exists()


def test_adding_a_webhook_shows_the_secret_once(browser, page, tenant):
    r = browser.post(page("webhooks"), {"url": "https://hooks.example.com/in", "events": ["delivered", "bounced"]})
    html = r.content.decode()
    secret = re.search(r'id="new-secret">(whsec_[^<]+)<', html).group(1)
    endpoint = Endpoint.objects.get(tenant=tenant)
    assert endpoint.events == ["delivered", "bounced"]
    later = browser.get(page("webhooks")).content.decode()
    assert "hooks.example.com" in later and secret not in later
    assert secret not in browser.get(page(f"webhooks/{endpoint.id}")).content.decode()


def test_webhook_errors_are_shown_in_words(browser, page, settings):
    settings.DISPATCH_WEBHOOK_ALLOW_PRIVATE = False
    r = browser.post(page("webhooks"), {"url": "http://127.0.0.1:9/x", "events": ["delivered"]})
    assert r.status_code == 200 and 'class="error"' in r.content.decode() and not Endpoint.objects.exists()


def test_webhook_events_test_disable_enable_replay_and_delete(browser, page, tenant):
    endpoint, _ = endpoint_create(tenant=tenant, url="https://hooks.example.com/in", events=["delivered"])
    base = f"webhooks/{endpoint.id}"
    r = browser.post(page(base), {"url": "https://hooks.example.com/v2", "events": ["bounced", "complained"]})
    assert r.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.url.endswith("/v2") and endpoint.events == ["bounced", "complained"]

    r = browser.post(page(f"{base}/test"), follow=True)
    assert b"Test event queued" in r.content and b"webhook.test" in r.content
    delivery = Delivery.objects.get(endpoint=endpoint)
    Delivery.objects.filter(pk=delivery.pk).update(status="exhausted", attempts=10, next_attempt_at=None,
                                                   last_response_code=500, last_error="HTTP 500")
    assert b"HTTP 500" in browser.get(page(base), {"status": "exhausted"}).content
    assert b"No deliveries with status succeeded" in browser.get(page(base), {"status": "succeeded"}).content

    browser.post(page(f"{base}/disable"))
    endpoint.refresh_from_db()
    assert not endpoint.enabled
    r = browser.post(page(f"{base}/deliveries/{delivery.id}/replay"), follow=True)
    assert b"disabled; enable it before replaying" in r.content
    browser.post(page(f"{base}/enable"))
    r = browser.post(page(f"{base}/deliveries/{delivery.id}/replay"), follow=True)
    assert b"Delivery queued again" in r.content
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.attempts == 0

    r = browser.post(page(f"{base}/delete"), follow=True)
    assert b"Webhook deleted" in r.content and not Endpoint.objects.exists()


def test_a_webhook_we_disabled_is_announced(browser, page, tenant):
    endpoint, _ = endpoint_create(tenant=tenant, url="https://hooks.example.com/in", events=["delivered"])
    endpoint_disable(endpoint=endpoint, reason="The endpoint answered 410 Gone.")
    assert b"answered 410 Gone" in browser.get(page()).content  # dashboard banner
    assert b"We disabled this endpoint" in browser.get(page(f"webhooks/{endpoint.id}")).content


def test_another_tenants_webhook_is_not_found(browser, page, other_tenant):
    foreign, _ = endpoint_create(tenant=other_tenant, url="https://hooks.example.com/in", events=["delivered"])
    assert browser.get(page(f"webhooks/{foreign.id}")).status_code == 404
    for action in ("test", "disable", "delete"):
        assert browser.post(page(f"webhooks/{foreign.id}/{action}")).status_code == 404
    assert browser.post(page(f"webhooks/{foreign.id}"), {"url": "https://evil.example/", "events": ["sent"]}).status_code == 404
    assert browser.post(page(f"webhooks/{foreign.id}/nonsense")).status_code == 404
    foreign.refresh_from_db()
    assert foreign.enabled and foreign.url == "https://hooks.example.com/in"
