import hashlib

import pytest
from django.db import connection

from tests.conftest import basic_client

pytestmark = pytest.mark.django_db


def test_create_returns_password_once_and_it_authenticates(api, tenant, settings):
    r = api.post(f"/api/v1/dispatch/tenants/{tenant.id}/credentials", {"label": "Production API"}, format="json")
    assert r.status_code == 201, r.content
    data = r.json()["data"]
    assert data["password"].startswith("dp_sk_") and len(data["password"]) >= 40
    assert data["username"].endswith("@" + settings.DISPATCH_HOSTNAME)
    assert data["smtp_host"] == settings.DISPATCH_HOSTNAME and data["smtp_port"] == 2525
    assert "not be shown again" in data["note"]
    listed = api.get(f"/api/v1/dispatch/tenants/{tenant.id}/credentials").json()["data"]
    assert listed[0]["id"] == data["id"] and "password" not in listed[0]
    assert data["password"] not in str(listed)
    client = basic_client(data["username"], data["password"])
    assert client.get(f"/api/v1/dispatch/tenants/{tenant.id}").status_code == 200


def test_secret_is_stored_only_as_a_digest(api, tenant):
    data = api.post(f"/api/v1/dispatch/tenants/{tenant.id}/credentials", {"label": "x"}, format="json").json()["data"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM tenants_credential")
        rows = str(cursor.fetchall())
    assert data["password"] not in rows
    assert hashlib.sha256(data["password"].encode()).hexdigest() in rows


def test_revoked_credential_is_401(api, tenant, credential):
    client = basic_client(credential.username, credential.password)
    assert client.get(f"/api/v1/dispatch/tenants/{tenant.id}").status_code == 200
    r = api.delete(f"/api/v1/dispatch/tenants/{tenant.id}/credentials/{credential.id}")
    assert r.status_code == 200
    r = client.get(f"/api/v1/dispatch/tenants/{tenant.id}")
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    assert api.get(f"/api/v1/dispatch/tenants/{tenant.id}/credentials").json()["data"][0]["revoked"] is True


def test_credentials_cannot_manage_credentials(cred_api, tenant):
    assert cred_api.get(f"/api/v1/dispatch/tenants/{tenant.id}/credentials").status_code == 403
    assert cred_api.post(f"/api/v1/dispatch/tenants/{tenant.id}/credentials", {"label": "x"}, format="json").status_code == 403


def test_cross_tenant_credentials_access(api, other_api, other_cred_api, tenant, credential):
    url = f"/api/v1/dispatch/tenants/{tenant.id}/credentials"
    assert other_api.get(url).status_code == 404
    assert other_api.delete(f"{url}/{credential.id}").status_code == 404
    r = other_cred_api.get(url)
    assert r.status_code == 403 and r.json()["error"]["code"] == "CREDENTIAL_MISMATCH"
    credential.refresh_from_db()
    assert credential.revoked_at is None


def test_unknown_credential_and_missing_label(api, tenant):
    import uuid

    r = api.delete(f"/api/v1/dispatch/tenants/{tenant.id}/credentials/{uuid.uuid4()}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "CREDENTIAL_NOT_FOUND"
    r = api.post(f"/api/v1/dispatch/tenants/{tenant.id}/credentials", {}, format="json")
    assert r.status_code == 400 and "label" in r.json()["error"]["details"]


def test_username_without_host_part_also_authenticates(tenant, credential):
    name = credential.username.split("@")[0]
    assert basic_client(name, credential.password).get(f"/api/v1/dispatch/tenants/{tenant.id}").status_code == 200
    assert basic_client(name + "@other.host", credential.password).get(f"/api/v1/dispatch/tenants/{tenant.id}").status_code == 401
