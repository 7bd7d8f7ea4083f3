"""Nothing the application answers is kept by a browser cache or a proxy: API answers and portal
pages carry tenant data and secrets shown once."""
import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_a_secret_shown_once_is_not_stored_by_caches(api, tenant):
    r = api.post(f"/api/v1/dispatch/tenants/{tenant.id}/credentials", {"label": "Production"}, format="json")
    assert r.status_code == 201
    assert r["Cache-Control"] == "no-store"


def test_api_answers_and_errors_are_no_store(api, tenant):
    assert api.get(f"/api/v1/dispatch/tenants/{tenant.id}")["Cache-Control"] == "no-store"
    missing = api.get(f"/api/v1/dispatch/tenants/{tenant.id}/emails/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and missing["Cache-Control"] == "no-store"
    assert Client().get(f"/api/v1/dispatch/tenants/{tenant.id}")["Cache-Control"] == "no-store"  # 401


def test_portal_pages_are_no_store(user, tenant):
    browser = Client()
    browser.force_login(user)
    for path in ("/portal/tenants", f"/portal/t/{tenant.id}/credentials", "/portal/signup"):
        page = browser.get(path)
        assert page.status_code == 200, path
        assert page["Cache-Control"] == "no-store", path


@pytest.mark.parametrize("path", ["/admin/login/", "/portal/login"])
def test_a_view_that_sets_its_own_cache_control_keeps_it(path):
    page = Client().get(path)
    assert page.status_code == 200
    assert "no-store" in page["Cache-Control"] and "private" in page["Cache-Control"]  # Django's never_cache
