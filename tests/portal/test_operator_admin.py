"""The operators' Django admin: the parts the portal issue added to each app's admin."""
import pytest

from domains.provider_services import dns_provider_connect
from domains.services import domain_create, domain_verify

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(make_user):
    user = make_user(email="operator@example.org")
    user.is_staff = user.is_superuser = True
    user.save()
    return user


@pytest.fixture
def staff(client, operator):
    client.force_login(operator)
    return client


def test_domain_list_shows_each_records_dns_state(staff, tenant, dns_server):
    domain = domain_create(tenant=tenant, name="example.com")
    assert b"not checked" in staff.get("/admin/domains/domain/").content
    dns_server.add(domain.verification_host, "TXT", domain.verification_value)
    domain_verify(tenant=tenant, domain_id=domain.id)
    html = staff.get("/admin/domains/domain/").content.decode()
    assert "verification verified" in html and "dkim missing" in html


def test_dns_providers_are_listed_without_credentials(staff, user, monkeypatch):
    from tests.dnsprov.fakes import FakeCloudflare

    fake = FakeCloudflare()
    monkeypatch.setattr("domains.providers.cloudflare.make_http_client", fake.http_client)
    dns_provider = dns_provider_connect(owner=user, provider="cloudflare", label="Acme CF", credentials={"token": fake.TOKEN})
    html = staff.get("/admin/domains/dnsprovider/").content.decode()
    assert "Acme CF" in html and user.email in html
    html = staff.get(f"/admin/domains/dnsprovider/{dns_provider.id}/change/").content.decode()
    assert "Acme CF" in html and fake.TOKEN not in html and "credentials_encrypted" not in html
