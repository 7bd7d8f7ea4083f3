"""domains.selectors.sending_domain_for: the one question `sending` asks."""
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from dispatch_site.errors import PermissionDenied
from domains import services
from domains.models import Domain
from domains.selectors import sending_domain_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def domain(tenant):
    domain = services.domain_create(tenant=tenant, name="example.com")
    Domain.objects.filter(pk=domain.pk).update(status=Domain.Status.VERIFIED, verified_at=timezone.now())
    domain.refresh_from_db()
    return domain


@pytest.mark.parametrize("address", [
    "hello@example.com", "Hello@EXAMPLE.COM", "hello@example.com.", "Support Team <support@example.com>",
])
def test_verified_exact_domain_may_send(tenant, domain, address):
    assert sending_domain_for(tenant=tenant, address=address) == domain


@pytest.mark.parametrize("address", [
    "hello@news.example.com", "hello@example.org", "hello@badexample.com", "no-at-sign", "", "hello@",
    "hello@[192.0.2.1]", "hello@localhost",
])
def test_other_addresses_may_not_send(tenant, domain, address):
    assert sending_domain_for(tenant=tenant, address=address) is None


def test_parent_domain_is_not_covered_by_a_verified_subdomain(tenant):
    sub = services.domain_create(tenant=tenant, name="news.example.com")
    Domain.objects.filter(pk=sub.pk).update(status=Domain.Status.VERIFIED)
    assert sending_domain_for(tenant=tenant, address="a@news.example.com") is not None
    assert sending_domain_for(tenant=tenant, address="a@example.com") is None


def test_only_the_owning_tenant_may_send(tenant, other_tenant, domain):
    assert sending_domain_for(tenant=other_tenant, address="hello@example.com") is None


@pytest.mark.parametrize("status, warning_hours_ago, usable", [
    (Domain.Status.PENDING, None, False),
    (Domain.Status.WARNING, 1, True),
    (Domain.Status.WARNING, 71.9, True),
    (Domain.Status.WARNING, 72.1, False),
    (Domain.Status.FAILED, None, False),
])
def test_status_decides(tenant, domain, settings, status, warning_hours_ago, usable):
    settings.DISPATCH_DOMAIN_GRACE_HOURS = 72
    since = timezone.now() - timedelta(hours=warning_hours_ago) if warning_hours_ago else None
    Domain.objects.filter(pk=domain.pk).update(status=status, warning_since=since)
    assert (sending_domain_for(tenant=tenant, address="a@example.com") is not None) is usable


def test_idn_sender_address_matches_the_punycode_domain(tenant):
    domain = services.domain_create(tenant=tenant, name="bücher.example")
    Domain.objects.filter(pk=domain.pk).update(status=Domain.Status.VERIFIED)
    assert sending_domain_for(tenant=tenant, address="info@Bücher.example") == domain
    assert sending_domain_for(tenant=tenant, address="info@xn--bcher-kva.example") == domain


def test_domain_contract_attributes(domain, settings):
    assert domain.return_path_domain == f"{settings.DISPATCH_RETURN_PATH_SUBDOMAIN}.example.com"
    assert domain.dkim_selector == settings.DISPATCH_DKIM_SELECTOR
    assert services.domain_dkim_private_key(domain).startswith(b"-----BEGIN PRIVATE KEY-----")


def test_development_shortcut_is_refused_outside_development(tenant, settings):
    settings.DISPATCH_ENV = "production"
    with pytest.raises(PermissionDenied):
        services.domain_mark_verified_for_development(tenant=tenant, name="example.com")
    assert not Domain.objects.exists()


def test_bootstrap_demo_verifies_example_com_in_development(settings, tmp_path, capsys):
    settings.DISPATCH_ENV = "development"
    settings.VAR_DIR = tmp_path
    call_command("bootstrap_demo")
    call_command("bootstrap_demo")  # idempotent
    domain = Domain.objects.get(name="example.com")
    assert domain.status == Domain.Status.VERIFIED and domain.verified_without_dns
    assert sending_domain_for(tenant=domain.tenant, address="hello@example.com") == domain
    assert services.domains_claim_due_rechecks(now=timezone.now() + timedelta(days=30)) == []
    assert "example.com" in capsys.readouterr().out


def test_bootstrap_demo_adds_no_domain_outside_development(settings, tmp_path):
    settings.DISPATCH_ENV = "test"
    settings.VAR_DIR = tmp_path
    call_command("bootstrap_demo")
    assert not Domain.objects.exists()
