import pytest

from tests.conftest import basic_client

pytestmark = pytest.mark.django_db


def test_plans_are_listed_for_any_principal(api, cred_api):
    for client in (api, cred_api):
        r = client.get("/api/v1/dispatch/plans")
        assert r.status_code == 200
        slugs = [p["slug"] for p in r.json()["data"]]
        assert slugs == ["free", "starter", "pro"]
        assert set(r.json()["data"][0]) >= {"name", "slug", "monthly_quota", "rate_limit_per_minute",
                                            "log_retention_days", "overage_allowed", "overage_price_per_1000"}


def test_user_creates_lists_reads_and_updates_tenants(api):
    r = api.post("/api/v1/dispatch/tenants", {"tenant_name": "Acme", "plan": "pro"}, format="json")
    assert r.status_code == 201, r.content
    tenant = r.json()["data"]
    assert tenant["tenant_name"] == "Acme" and tenant["plan"]["slug"] == "pro" and tenant["status"] == "active"
    assert api.get("/api/v1/dispatch/tenants").json()["data"][-1]["id"] == tenant["id"]
    detail = api.get(f"/api/v1/dispatch/tenants/{tenant['id']}").json()["data"]
    assert detail["usage"]["monthly_quota"] == 250_000 and detail["usage"]["emails_sent"] == 0
    r = api.put(f"/api/v1/dispatch/tenants/{tenant['id']}", {"tenant_name": "Acme Mail", "overage_enabled": True}, format="json")
    assert r.status_code == 200
    assert r.json()["data"]["tenant_name"] == "Acme Mail" and r.json()["data"]["overage_enabled"] is True


def test_unknown_plan_and_overage_on_free_plan_are_400(api):
    assert api.post("/api/v1/dispatch/tenants", {"tenant_name": "X", "plan": "nope"}, format="json").status_code == 400
    t = api.post("/api/v1/dispatch/tenants", {"tenant_name": "X", "plan": "free"}, format="json").json()["data"]
    r = api.put(f"/api/v1/dispatch/tenants/{t['id']}", {"overage_enabled": True}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "VALIDATION_ERROR"


def test_another_users_tenant_is_404(api, other_tenant):
    for method in ("get", "put"):
        r = getattr(api, method)(f"/api/v1/dispatch/tenants/{other_tenant.id}", {"tenant_name": "mine"}, format="json")
        assert r.status_code == 404 and r.json()["error"]["code"] == "TENANT_NOT_FOUND"
    other_tenant.refresh_from_db()
    assert other_tenant.name != "mine"
    assert str(other_tenant.id) not in str(api.get("/api/v1/dispatch/tenants").content)


def test_credential_reads_only_its_tenant(cred_api, tenant, other_tenant):
    assert [t["id"] for t in cred_api.get("/api/v1/dispatch/tenants").json()["data"]] == [str(tenant.id)]
    assert cred_api.get(f"/api/v1/dispatch/tenants/{tenant.id}").status_code == 200
    r = cred_api.get(f"/api/v1/dispatch/tenants/{other_tenant.id}")
    assert r.status_code == 403 and r.json()["error"]["code"] == "CREDENTIAL_MISMATCH"
    r = cred_api.put(f"/api/v1/dispatch/tenants/{tenant.id}", {"tenant_name": "x"}, format="json")
    assert r.status_code == 403
    assert cred_api.post("/api/v1/dispatch/tenants", {"tenant_name": "x"}, format="json").status_code == 403


def test_suspended_tenant_refuses_its_credentials_but_owner_can_read(api, cred_api, tenant):
    from tenants.services import tenant_set_status

    tenant_set_status(tenant=tenant, status="suspended")
    r = cred_api.get(f"/api/v1/dispatch/tenants/{tenant.id}")
    assert r.status_code == 403 and r.json()["error"]["code"] == "TENANT_NOT_ACTIVE"
    assert api.get(f"/api/v1/dispatch/tenants/{tenant.id}").json()["data"]["status"] == "suspended"


def test_non_uuid_tenant_id_is_404(api):
    assert api.get("/api/v1/dispatch/tenants/not-a-uuid").status_code == 404
