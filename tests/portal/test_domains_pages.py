import pytest

from domains.models import Domain

from .conftest import make_verified_domain

pytestmark = pytest.mark.django_db


def test_adding_a_domain_shows_the_records_to_publish_with_copy_buttons(browser, page, tenant):
    r = browser.post(page("domains"), {"domain": "Example.COM"})
    domain = Domain.objects.get(tenant=tenant)
    assert r.status_code == 302 and r["Location"] == page(f"domains/{domain.id}")
    html = browser.get(r["Location"]).content.decode()
    assert domain.verification_host in html and domain.verification_value in html
    assert f'data-copy="{domain.verification_value}"' in html
    assert f"p={domain.dkim_public_key}" in html and "unchecked" in html
    assert "example.com" in browser.get(page("domains")).content.decode()


def test_an_invalid_or_duplicate_domain_is_explained(browser, page, tenant):
    r = browser.post(page("domains"), {"domain": "not a domain"})
    assert r.status_code == 200 and 'class="messages"' in r.content.decode() and not Domain.objects.exists()
    make_verified_domain(tenant, "example.com")
    r = browser.post(page("domains"), {"domain": "example.com"})
    assert b"already a domain of this tenant" in r.content


def test_verify_button_checks_dns_and_reports_each_record(browser, page, tenant, dns_server):
    browser.post(page("domains"), {"domain": "example.com"})
    domain = Domain.objects.get(tenant=tenant)
    r = browser.post(page(f"domains/{domain.id}/verify"), follow=True)
    assert b"is not verified yet" in r.content
    domain.refresh_from_db()
    assert domain.status == "pending"

    dns_server.add(domain.verification_host, "TXT", domain.verification_value)
    dns_server.add(domain.dkim_host, "TXT", f"v=DKIM1; k=rsa; p={domain.dkim_public_key}")
    r = browser.post(page(f"domains/{domain.id}/verify"), follow=True)
    html = r.content.decode()
    assert "is verified: you can send from it" in html
    domain.refresh_from_db()
    assert domain.status == "verified"
    assert domain.record_status("dkim") == "verified" and domain.record_status("spf") == "missing"
    assert html.count('class="badge verified"') >= 3  # page heading, ownership, DKIM
    from django.utils.html import escape

    assert escape(domain.dns_check["records"]["spf"]["message"]) in html


def test_removing_a_domain(browser, page, tenant):
    domain = make_verified_domain(tenant)
    r = browser.post(page(f"domains/{domain.id}/delete"), follow=True)
    assert b"example.com removed" in r.content and not Domain.objects.exists()


def test_another_tenants_domain_is_not_found(browser, page, other_tenant):
    foreign = make_verified_domain(other_tenant, "foreign.example")
    for suffix in (f"domains/{foreign.id}", f"domains/{foreign.id}/verify", f"domains/{foreign.id}/delete"):
        method = browser.get if suffix.count("/") == 1 else browser.post
        assert method(page(suffix)).status_code == 404
    assert Domain.objects.filter(pk=foreign.pk).exists()
