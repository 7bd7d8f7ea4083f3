import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def logged_in(user):
    client = Client()
    client.force_login(user)
    return client


def test_signup_logs_in_and_leads_to_tenant_creation():
    client = Client()
    r = client.post("/portal/signup", {"email": "new@example.org", "password": "a-long-enough-passphrase"})
    assert r.status_code == 302 and r["Location"] == "/portal/tenants/new"
    r = client.post("/portal/tenants/new", {"tenant_name": "Acme", "plan": "starter"})
    assert r.status_code == 302
    page = client.get(r["Location"])
    assert page.status_code == 200 and b"Dashboard" in page.content and b"Acme" in page.content


def test_signup_shows_service_errors_in_words(user):
    r = Client().post("/portal/signup", {"email": user.email, "password": "a-long-enough-passphrase"})
    assert r.status_code == 200 and b"already exists" in r.content
    r = Client().post("/portal/signup", {"email": "x@example.org", "password": "1234567890"})
    assert b"entirely numeric" in r.content


def test_login_logout_and_password_change(user):
    client = Client()
    assert client.get("/portal/tenants").status_code == 302
    r = client.post("/portal/login", {"username": user.email, "password": "correct horse battery staple"})
    assert r.status_code == 302
    assert client.get("/portal/tenants").status_code == 200
    r = client.post("/portal/password", {"old_password": "correct horse battery staple",
                                         "new_password1": "another long passphrase", "new_password2": "another long passphrase"})
    assert r.status_code == 302
    client.post("/portal/logout")
    assert client.get("/portal/tenants").status_code == 302
    assert Client().login(username=user.email, password="another long passphrase")


def test_pages_only_show_the_users_own_tenants(user, tenant, other_tenant):
    client = logged_in(user)
    listing = client.get("/portal/tenants").content.decode()
    assert tenant.name in listing and other_tenant.name not in listing
    for suffix in ("", "settings", "credentials"):
        assert client.get(f"/portal/t/{other_tenant.id}/{suffix}", HTTP_ACCEPT="text/html").status_code == 404
    assert client.post(f"/portal/t/{other_tenant.id}/settings", {"tenant_name": "pwned"}).status_code == 404
    other_tenant.refresh_from_db()
    assert other_tenant.name != "pwned"


def test_settings_page_updates_and_explains_plan_limits(user, make_tenant):
    tenant = make_tenant(owner=user, plan="free")
    client = logged_in(user)
    r = client.post(f"/portal/t/{tenant.id}/settings", {"tenant_name": "Renamed", "overage_enabled": "on"})
    assert r.status_code == 200 and b"does not allow overage" in r.content
    r = client.post(f"/portal/t/{tenant.id}/settings", {"tenant_name": "Renamed"})
    assert r.status_code == 302
    tenant.refresh_from_db()
    assert tenant.name == "Renamed"


def test_credential_page_shows_password_once_and_revokes(user, tenant):
    client = logged_in(user)
    r = client.post(f"/portal/t/{tenant.id}/credentials", {"label": "Production"})
    html = r.content.decode()
    password = re.search(r'id="new-password">(dp_sk_[^<]+)<', html).group(1)
    assert "swaks --server" in html and "curl -u" in html
    later = client.get(f"/portal/t/{tenant.id}/credentials").content.decode()
    assert "Production" in later and password not in later
    from tenants.models import Credential

    credential = Credential.objects.get(tenant=tenant)
    client.post(f"/portal/t/{tenant.id}/credentials/{credential.id}/revoke")
    credential.refresh_from_db()
    assert credential.revoked_at is not None


def test_forms_require_csrf(user, tenant):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(f"/portal/t/{tenant.id}/credentials", {"label": "x"}).status_code == 403
