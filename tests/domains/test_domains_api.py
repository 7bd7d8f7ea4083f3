import base64

import pytest
from cryptography.hazmat.primitives import serialization
from django.db import connection

from domains.models import Domain
from domains.services import domain_dkim_private_key
from tests.domains.conftest import publish

pytestmark = pytest.mark.django_db


def url(tenant, *parts):
    return "/".join([f"/api/v1/dispatch/tenants/{tenant.id}/domains", *map(str, parts)])


def records_by_kind(records):
    return {r["kind"]: r for r in records}


def test_add_returns_the_records_to_publish(api, tenant, settings):
    r = api.post(url(tenant), {"domain": "Example.COM."}, format="json")
    assert r.status_code == 201, r.content
    data = r.json()["data"]
    domain = data["domain"]
    assert domain["domain"] == "example.com" and domain["verified"] is False and domain["status"] == "pending"
    assert domain["dkim_selector"] == settings.DISPATCH_DKIM_SELECTOR
    assert domain["return_path_domain"] == f"{settings.DISPATCH_RETURN_PATH_SUBDOMAIN}.example.com"
    records = records_by_kind(data["dns_records"])
    assert set(records) == {"verification", "dkim", "spf", "dmarc", "return_path", "return_path_spf"}
    assert records["verification"]["host"] == f"{settings.DISPATCH_VERIFY_RECORD_PREFIX}.example.com"
    assert records["verification"]["value"].startswith(settings.DISPATCH_VERIFY_TOKEN_PREFIX)
    assert len(records["verification"]["value"]) >= len(settings.DISPATCH_VERIFY_TOKEN_PREFIX) + 32
    assert records["verification"]["required"] is True
    assert records["dkim"]["host"] == f"{settings.DISPATCH_DKIM_SELECTOR}._domainkey.example.com"
    assert records["spf"] == {**records["spf"], "record_type": "TXT", "host": "example.com",
                              "value": f"v=spf1 include:{settings.DISPATCH_HOSTNAME} ~all"}
    assert records["dmarc"]["host"] == "_dmarc.example.com" and records["dmarc"]["value"].startswith("v=DMARC1;")
    assert records["return_path"] == {**records["return_path"], "record_type": "MX",
                                      "host": domain["return_path_domain"], "value": f"10 {settings.DISPATCH_HOSTNAME}"}
    assert all({"record_type", "host", "value", "purpose"} <= set(rec) for rec in data["dns_records"])


def test_the_hosted_services_record_names_are_three_settings_away(api, tenant, settings):
    """docs/domains.md: the spec's example records, name for name."""
    settings.DISPATCH_VERIFY_RECORD_PREFIX = "_cybdispatch"
    settings.DISPATCH_VERIFY_TOKEN_PREFIX = "cyb-verify-"
    settings.DISPATCH_RETURN_PATH_SUBDOMAIN = "dispatch"
    settings.DISPATCH_HOSTNAME = "dispatch.cybernethicc.com"
    r = api.post(url(tenant), {"domain": "yourdomain.com"}, format="json")
    assert r.status_code == 201, r.content
    shown = [(rec["record_type"], rec["host"], rec["value"].split("=")[0] if rec["kind"] == "dkim" else rec["value"],
              rec["purpose"]) for rec in r.json()["data"]["dns_records"] if rec["kind"] != "return_path_spf"]
    token = shown[0][2]
    assert token.startswith("cyb-verify-")
    assert shown == [
        ("TXT", "_cybdispatch.yourdomain.com", token, "Domain verification"),
        ("TXT", "dispatch._domainkey.yourdomain.com", "v", "DKIM signing"),
        ("TXT", "yourdomain.com", "v=spf1 include:dispatch.cybernethicc.com ~all", "SPF - authorize sending servers"),
        ("TXT", "_dmarc.yourdomain.com", "v=DMARC1; p=none;", "DMARC policy"),
        ("MX", "dispatch.yourdomain.com", "10 dispatch.cybernethicc.com", "Bounce handling return path"),
    ]


def test_dkim_record_carries_the_public_half_of_a_fresh_rsa_2048_key(api, tenant, add_domain):
    first = add_domain("example.com")
    second = add_domain("example.org")
    value = records_by_kind(first["dns_records"])["dkim"]["value"]
    assert value.startswith("v=DKIM1; k=rsa; p=")
    public = serialization.load_der_public_key(base64.b64decode(value.split("p=", 1)[1]))
    assert public.key_size == 2048
    domain = Domain.objects.get(pk=first["domain"]["id"])
    private = serialization.load_pem_private_key(domain_dkim_private_key(domain), password=None)
    assert private.public_key().public_numbers() == public.public_numbers()
    assert records_by_kind(second["dns_records"])["dkim"]["value"] != value


def test_dkim_private_key_is_not_stored_in_clear(api, tenant, add_domain):
    data = add_domain("example.com")
    domain = Domain.objects.get(pk=data["domain"]["id"])
    pem = domain_dkim_private_key(domain)
    body = b"".join(pem.strip().splitlines()[1:-1])
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM domains_domain")
        row = repr(cursor.fetchall())
    assert b"PRIVATE KEY" not in bytes(domain.dkim_private_key_encrypted)
    assert body[:40].decode() not in row and "PRIVATE KEY" not in row
    # The ciphertext is bound to its row: copied to another domain, it does not decrypt.
    other = Domain.objects.get(pk=add_domain("example.org")["domain"]["id"])
    other.dkim_private_key_encrypted = domain.dkim_private_key_encrypted
    with pytest.raises(Exception, match="associated data"):
        domain_dkim_private_key(other)


def test_publish_records_then_verify(api, tenant, add_domain, dns_server):
    data = add_domain("example.com")
    domain_id = data["domain"]["id"]
    r = api.post(url(tenant, domain_id, "verify"))
    assert r.status_code == 200
    body = r.json()["data"]
    assert body["verified"] is False and body["domain"]["status"] == "pending"
    assert {rec["status"] for rec in body["records"]} == {"missing"}
    assert "NXDOMAIN" in records_by_kind(body["records"])["verification"]["message"]

    publish(dns_server, data["dns_records"])
    r = api.post(url(tenant, domain_id, "verify"))
    body = r.json()["data"]
    assert body["verified"] is True, body
    assert body["domain"]["verified"] is True and body["domain"]["status"] == "verified"
    assert body["domain"]["verified_at"] and body["domain"]["last_checked_at"]
    for rec in body["records"]:
        assert rec["status"] == "verified", rec
        assert rec["found"]

    listed = api.get(url(tenant)).json()["data"]
    assert len(listed) == 1 and listed[0]["verified"] is True
    assert {rec["status"] for rec in listed[0]["dns_records"]} == {"verified"}
    assert api.get(url(tenant, domain_id)).json()["data"]["status"] == "verified"


def test_only_the_ownership_record_is_required(api, tenant, add_domain, dns_server):
    data = add_domain("example.com")
    publish(dns_server, data["dns_records"], kinds={"verification"})
    body = api.post(url(tenant, data["domain"]["id"], "verify")).json()["data"]
    assert body["verified"] is True
    statuses = {rec["kind"]: rec["status"] for rec in body["records"]}
    assert statuses == {"verification": "verified", "dkim": "missing", "spf": "missing", "dmarc": "missing",
                        "return_path": "missing", "return_path_spf": "missing"}


def test_list_before_any_check_shows_unchecked_records(api, tenant, add_domain):
    add_domain("example.com")
    [item] = api.get(url(tenant)).json()["data"]
    assert item["status"] == "pending" and len(item["dns_records"]) == 6
    assert {rec["status"] for rec in item["dns_records"]} == {"unchecked"}


def test_delete_domain(api, tenant, add_domain):
    data = add_domain("example.com")
    r = api.delete(url(tenant, data["domain"]["id"]))
    assert r.status_code == 200
    assert api.get(url(tenant)).json()["data"] == []
    r = api.delete(url(tenant, data["domain"]["id"]))
    assert r.status_code == 404 and r.json()["error"]["code"] == "DOMAIN_NOT_FOUND"


@pytest.mark.parametrize("name, fragment", [
    ("localhost", "single-label"),
    ("mail.localhost", "not a public domain"),
    ("printer.local", "not a public domain"),
    ("192.0.2.1", "IP address"),
    ("[192.0.2.1]", "IP address"),
    ("2001:db8::1", "IP address"),
    ("1.2.3.4.", "numeric"),
    ("com", "single-label"),
    ("a" * 64 + ".com", "longer than 63"),
    (("a" * 62 + ".") * 4 + "com", "longer than 253"),
    ("-bad.example.com", "inner hyphens"),
    ("under_score.example.com", "inner hyphens"),
    ("exa mple.com", ""),
    ("user@example.com", "e-mail address"),
    ("https://example.com/", "URL"),
    ("example..com", "empty label"),
    ("xn--a.example", "internationalised"),
    ("bü cher.example", "internationalised"),
    ("", "domain"),
])
def test_invalid_domains_are_400(api, tenant, name, fragment):
    r = api.post(url(tenant), {"domain": name}, format="json")
    assert r.status_code == 400, (name, r.content)
    error = r.json()["error"]
    assert error["code"] == "VALIDATION_ERROR" and fragment in error["message"]
    assert "domain" in error["details"]
    assert not Domain.objects.exists()


def test_missing_body_field_is_400(api, tenant):
    r = api.post(url(tenant), {}, format="json")
    assert r.status_code == 400 and r.json()["error"]["details"]["domain"]


def test_same_domain_twice_in_a_tenant_is_409(api, tenant, add_domain):
    add_domain("example.com")
    r = api.post(url(tenant), {"domain": "EXAMPLE.com."}, format="json")
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "DOMAIN_EXISTS"


def test_idn_domain_is_stored_as_punycode(api, tenant, add_domain, dns_server):
    data = add_domain("Bücher.example")
    assert data["domain"]["domain"] == "xn--bcher-kva.example"
    assert data["domain"]["domain_unicode"] == "bücher.example"
    assert all(rec["host"].endswith("xn--bcher-kva.example") for rec in data["dns_records"])
    r = api.post(url(tenant), {"domain": "xn--bcher-kva.example"}, format="json")
    assert r.status_code == 409
    publish(dns_server, data["dns_records"], kinds={"verification"})
    assert api.post(url(tenant, data["domain"]["id"], "verify")).json()["data"]["verified"] is True


def test_cross_tenant_access_is_404_for_users_and_403_for_credentials(
    api, tenant, add_domain, other_api, other_cred_api, dns_server
):
    data = add_domain("example.com")
    domain_id = data["domain"]["id"]
    for method, path in [("get", url(tenant)), ("post", url(tenant)), ("get", url(tenant, domain_id)),
                         ("delete", url(tenant, domain_id)), ("post", url(tenant, domain_id, "verify"))]:
        r = getattr(other_api, method)(path, {"domain": "evil.example"}, format="json")
        assert r.status_code == 404, (method, path, r.content)
        assert r.json()["error"]["code"] == "TENANT_NOT_FOUND"
        r = getattr(other_cred_api, method)(path, {"domain": "evil.example"}, format="json")
        assert r.status_code == 403, (method, path, r.content)
        assert r.json()["error"]["code"] == "CREDENTIAL_MISMATCH"
    assert Domain.objects.filter(pk=domain_id).exists() and Domain.objects.count() == 1


def test_another_tenants_domain_id_under_my_tenant_is_404(api, tenant, other_api, other_tenant, add_domain):
    theirs = add_domain("example.com", client=other_api, tenant_id=other_tenant.id)["domain"]["id"]
    for method in ("get", "delete"):
        r = getattr(api, method)(url(tenant, theirs))
        assert r.status_code == 404 and r.json()["error"]["code"] == "DOMAIN_NOT_FOUND"
    r = api.post(url(tenant, theirs, "verify"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "DOMAIN_NOT_FOUND"
    assert Domain.objects.filter(pk=theirs).exists()


def test_credential_of_the_tenant_can_manage_domains(cred_api, tenant):
    r = cred_api.post(url(tenant), {"domain": "example.com"}, format="json")
    assert r.status_code == 201
    assert len(cred_api.get(url(tenant)).json()["data"]) == 1


def test_unauthenticated_is_401(tenant):
    from rest_framework.test import APIClient

    r = APIClient().get(url(tenant))
    assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED"
