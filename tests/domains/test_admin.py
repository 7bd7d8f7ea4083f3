import pytest

from domains import services
from domains.models import Domain

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, make_user):
    operator = make_user(email="operator@example.org")
    operator.is_staff = operator.is_superuser = True
    operator.save()
    client.force_login(operator)
    return client


def test_admin_lists_domains_without_the_private_key(staff_client, tenant):
    domain = services.domain_create(tenant=tenant, name="example.com")
    r = staff_client.get("/admin/domains/domain/")
    assert r.status_code == 200 and b"example.com" in r.content
    r = staff_client.get(f"/admin/domains/domain/{domain.pk}/change/")
    assert r.status_code == 200
    assert b"dkim_private_key" not in r.content and b"PRIVATE KEY" not in r.content


def test_admin_reverify_action_checks_dns(staff_client, tenant, dns_server):
    domain = services.domain_create(tenant=tenant, name="example.com")
    dns_server.add(domain.verification_host, "TXT", domain.verification_value)
    r = staff_client.post("/admin/domains/domain/", {"action": "reverify", "_selected_action": [str(domain.pk)]})
    assert r.status_code == 302
    domain.refresh_from_db()
    assert domain.status == Domain.Status.VERIFIED and domain.last_checked_at is not None
