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


@pytest.fixture
def message(tenant, send):
    from .conftest import make_verified_domain

    make_verified_domain(tenant)
    return send(tenant, subject="Private matter", text_body="The secret text", html_body="<p>The secret html</p>").message


def test_message_pages_show_metadata_but_never_the_body(staff, message):
    html = staff.get(f"/admin/sending/message/{message.pk}/change/").content.decode()
    assert "Private matter" in html and "The secret text" not in html and "The secret html" not in html
    assert f"/admin/sending/message/{message.pk}/body/" in html
    assert "The secret text" not in staff.get("/admin/sending/message/").content.decode()


def test_viewing_a_body_asks_first_and_is_recorded(staff, operator, message, caplog):
    from django.contrib.admin.models import LogEntry

    confirm = staff.get(f"/admin/sending/message/{message.pk}/body/").content.decode()
    assert "is recorded" in confirm and "The secret text" not in confirm
    assert not LogEntry.objects.exists()

    with caplog.at_level("INFO", logger="dispatch.audit"):
        html = staff.post(f"/admin/sending/message/{message.pk}/body/").content.decode()
    assert "The secret text" in html and '<iframe sandbox=""' in html and "Subject" in html
    entry = LogEntry.objects.get()
    assert entry.user_id == operator.pk and entry.object_id == str(message.pk) and "Viewed the message body" in str(entry)
    assert f"operator {operator.email} viewed the body of message {message.pk}" in caplog.text
    history = staff.get(f"/admin/sending/message/{message.pk}/history/").content.decode()
    assert "Viewed the message body" in history


def test_only_staff_with_view_permission_may_view_a_body(client, make_user, message):
    from django.contrib.auth.models import Permission

    clerk = make_user(email="clerk@example.org")
    clerk.is_staff = True
    clerk.save()
    client.force_login(clerk)
    assert client.post(f"/admin/sending/message/{message.pk}/body/").status_code == 403
    clerk.user_permissions.add(Permission.objects.get(codename="view_message"))
    assert b"The secret text" in client.post(f"/admin/sending/message/{message.pk}/body/").content
    client.logout()
    r = client.post(f"/admin/sending/message/{message.pk}/body/")
    assert r.status_code == 302 and "/admin/login/" in r["Location"]


def test_suppressions_added_in_the_admin_go_through_the_service(staff, tenant):
    from sending.models import Suppression

    r = staff.post("/admin/sending/suppression/add/", {"tenant": tenant.pk, "email": "Someone@Example.ORG",
                                                       "reason": "asked by phone", "source": "manual"})
    assert r.status_code == 302, r.content.decode()[-2000:]
    suppression = Suppression.objects.get(tenant=tenant)
    assert suppression.email == "someone@example.org"
    r = staff.post("/admin/sending/suppression/add/", {"tenant": tenant.pk, "email": "not an address", "source": "manual"})
    assert r.status_code == 200 and b"not a valid email address" in r.content and Suppression.objects.count() == 1


def test_tenants_show_this_months_usage_at_a_glance(staff, tenant, make_tenant, django_assert_max_num_queries):
    from tenants.models import UsageCounter
    from tenants.selectors import period_start

    UsageCounter.objects.create(tenant=tenant, period=period_start(), emails_sent=1500, delivered=1200, hard_bounce=30)
    for _ in range(5):
        make_tenant()
    quota = tenant.plan.monthly_quota
    with django_assert_max_num_queries(12):  # not one query per tenant
        html = staff.get("/admin/tenants/tenant/").content.decode()
    assert f"1,500 / {quota:,} ({100 * 1500 / quota:.1f}%)" in html and f"0 / {quota:,}" in html
    html = staff.get(f"/admin/tenants/tenant/{tenant.pk}/change/").content.decode()
    assert "1,500 of" in html and "delivered 1,200 (80.0%)" in html and "hard bounces 2.0%" in html


def test_suspend_and_reactivate_actions_go_through_the_service(staff, tenant):
    staff.post("/admin/tenants/tenant/", {"action": "suspend", "_selected_action": [str(tenant.pk)]})
    tenant.refresh_from_db()
    assert tenant.status == "suspended" and "operator operator@example.org" in tenant.status_reason
    staff.post("/admin/tenants/tenant/", {"action": "reactivate", "_selected_action": [str(tenant.pk)]})
    tenant.refresh_from_db()
    assert tenant.status == "active"
