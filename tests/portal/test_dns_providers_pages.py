"""DNS providers (the user's own) and a domain's automatic DNS setup from the portal. Cloudflare
is faked at its HTTP transport, its zone served by the loopback DNS server."""
import pytest

from domains.models import DnsProvider, Domain
from domains.provider_services import dns_provider_connect
from domains.services import domain_create
from tests.dnsprov.conftest import cloudflare_api  # noqa: F401  (the fixture: Cloudflare faked at its transport)

from .conftest import logged_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def provider(user, cloudflare_api):
    return dns_provider_connect(owner=user, provider="cloudflare", label="My Cloudflare",
                                credentials={"token": cloudflare_api.TOKEN})


def test_connect_list_and_disconnect_a_provider(browser, user, cloudflare_api):
    r = browser.post("/portal/dns-providers", {"provider": "cloudflare", "label": "Work CF", "token": cloudflare_api.TOKEN,
                                               "access_key": "ignored for cloudflare"}, follow=True)
    assert b"Work CF connected" in r.content
    dns_provider = DnsProvider.objects.get(owner=user)
    assert cloudflare_api.TOKEN.encode() not in bytes(dns_provider.credentials_encrypted)
    html = browser.get("/portal/dns-providers").content.decode()
    assert "Work CF" in html and "Cloudflare" in html and cloudflare_api.TOKEN not in html

    r = browser.post(f"/portal/dns-providers/{dns_provider.id}/disconnect", follow=True)
    assert b"Work CF disconnected" in r.content and not DnsProvider.objects.exists()


def test_connecting_explains_missing_or_rejected_credentials(browser, cloudflare_api):
    r = browser.post("/portal/dns-providers", {"provider": "route53", "label": "aws"})
    assert r.status_code == 200 and b"needs: access_key, secret_key" in r.content
    r = browser.post("/portal/dns-providers", {"provider": "cloudflare", "token": "wrong-token-wrong-token-wrong-token-1234"})
    assert r.status_code == 200 and 'class="error"' in r.content.decode()
    assert not DnsProvider.objects.exists()


def test_a_refused_connection_does_not_send_the_secrets_back(browser):
    key = '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\nMIIsecretkeymaterial\\n"}'
    r = browser.post("/portal/dns-providers", {"provider": "gcp", "label": "gcp", "service_account_json": key,
                                               "token": "a-cloudflare-token-typed-by-mistake"})
    assert r.status_code == 200 and 'class="error"' in r.content.decode()
    html = r.content.decode()
    assert "MIIsecretkeymaterial" not in html and "a-cloudflare-token-typed-by-mistake" not in html
    assert 'value="gcp"' in html  # the harmless fields are kept for the retry
    assert not DnsProvider.objects.exists()


def test_another_users_provider_cannot_be_seen_used_or_disconnected(other_user, tenant, cloudflare_api, browser):
    theirs = dns_provider_connect(owner=other_user, provider="cloudflare", label="Theirs",
                                  credentials={"token": cloudflare_api.TOKEN})
    assert b"Theirs" not in browser.get("/portal/dns-providers").content
    assert browser.post(f"/portal/dns-providers/{theirs.id}/disconnect").status_code == 404
    domain = domain_create(tenant=tenant, name="example.com")
    assert b"Theirs" not in browser.get(f"/portal/t/{tenant.id}/domains/{domain.id}?provider={theirs.id}").content
    r = browser.post(f"/portal/t/{tenant.id}/domains/{domain.id}/dns-setup", {"provider_id": theirs.id, "zone_id": "x",
                                                                            "spf_action": "append", "dmarc_action": "create"})
    assert r.status_code == 404
    assert browser.post(f"/portal/t/{tenant.id}/domains/{domain.id}/dns-setup", {"provider_id": "nonsense"}).status_code == 404
    assert DnsProvider.objects.filter(pk=theirs.pk).exists() and not cloudflare_api.writes()


def test_setup_lists_zones_publishes_the_records_and_verifies(browser, tenant, provider, cloudflare_api, dns_server):
    cloudflare_api.publish_to(dns_server)
    cloudflare_api.add_zone("other.org")
    zone_id = cloudflare_api.add_zone("example.com")
    domain = domain_create(tenant=tenant, name="mail.example.com")
    page = f"/portal/t/{tenant.id}/domains/{domain.id}"

    html = browser.get(page).content.decode()
    assert "My Cloudflare" in html and "example.com</option>" not in html  # zones are listed on request only
    html = browser.get(page, {"provider": provider.id}).content.decode()
    assert f'<option value="{zone_id}" selected>example.com</option>' in html and "other.org" in html

    r = browser.post(f"{page}/dns-setup", {"provider_id": provider.id, "zone_id": zone_id, "spf_action": "append",
                                           "dmarc_action": "create", "dmarc_rua_email": ""}, follow=True)
    html = r.content.decode()
    assert "6 record(s) created or updated" in html and "is verified: you can send from it" in html
    domain.refresh_from_db()
    assert domain.status == Domain.Status.VERIFIED and domain.record_status("dkim") == "verified"


def test_setup_errors_are_shown_in_words(browser, tenant, provider, cloudflare_api):
    zone_id = cloudflare_api.add_zone("example.com")
    domain = domain_create(tenant=tenant, name="example.com")
    r = browser.post(f"/portal/t/{tenant.id}/domains/{domain.id}/dns-setup", {
        "provider_id": provider.id, "zone_id": "no-such-zone", "spf_action": "append", "dmarc_action": "create"},
        follow=True)
    assert b"no zone with id no-such-zone" in r.content
    r = browser.post(f"/portal/t/{tenant.id}/domains/{domain.id}/dns-setup", {
        "provider_id": provider.id, "zone_id": zone_id, "spf_action": "append", "dmarc_action": "update"}, follow=True)
    assert b"dmarc_action=update needs dmarc_rua_email" in r.content and not cloudflare_api.writes()
    domain.refresh_from_db()
    assert domain.status == Domain.Status.PENDING


def test_provider_pages_need_a_login_and_csrf(client, user):
    assert client.get("/portal/dns-providers")["Location"].startswith("/portal/login")
    assert logged_in(user, csrf=True).post("/portal/dns-providers", {"provider": "cloudflare"}).status_code == 403
