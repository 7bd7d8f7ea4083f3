"""POST /dispatch/tenants/{tid}/domains/{did}/dns-setup through a connected provider (Cloudflare
faked at its HTTP transport, its zone served by the loopback DNS server so verification sees it)."""
import pytest

from domains.provider_services import dns_provider_connect
from domains.services import domain_create

HOST = "mail.dispatch.test"


@pytest.fixture
def zone_id(cloudflare_api, dns_server):
    cloudflare_api.publish_to(dns_server)
    return cloudflare_api.add_zone("example.com")


@pytest.fixture
def provider(user, cloudflare_api):
    return dns_provider_connect(owner=user, provider="cloudflare", label="cf", credentials={"token": cloudflare_api.TOKEN})


@pytest.fixture
def domain(tenant):
    return domain_create(tenant=tenant, name="example.com")


def url(tenant, domain):
    return f"/api/v1/dispatch/tenants/{tenant.id}/domains/{domain.id}/dns-setup"


def body(provider, zone_id, **overrides):
    return {"provider_id": str(provider.id), "zone_id": zone_id, "zone_name": "example.com", "spf_action": "append",
            "dmarc_action": "create", "dmarc_rua_email": "dmarc@example.com", **overrides}


def assert_error(response, status, code):
    assert response.status_code == status, response.json()
    assert response.json()["error"]["code"] == code
    return response.json()["error"]


def test_setup_publishes_every_record_and_verifies_the_domain(api, tenant, domain, provider, zone_id, cloudflare_api):
    response = api.post(url(tenant, domain), body(provider, zone_id), format="json")

    assert response.status_code == 200, response.json()
    data = response.json()["data"]
    assert {r["kind"]: r["status"] for r in data["records"]} == {
        "verification": "created", "dkim": "created", "spf": "created", "dmarc": "created",
        "return_path": "created", "return_path_spf": "created",
    }
    assert data["verified"] is True and data["domain"]["status"] == "verified"
    assert {c["kind"]: c["status"] for c in data["checks"]}["dkim"] == "verified"
    contents = {(r["name"], r["type"]): r["content"] for r in cloudflare_api.records.values()}
    assert contents[(domain.verification_host, "TXT")] == f'"{domain.verification_value}"'
    assert contents[("example.com", "TXT")] == f'"v=spf1 include:{HOST} ~all"'
    assert contents[("_dmarc.example.com", "TXT")] == '"v=DMARC1; p=none; rua=mailto:dmarc@example.com"'
    assert contents[(domain.return_path_domain, "MX")] == HOST
    dkim = "".join(contents[(domain.dkim_host, "TXT")].replace('" "', "").strip('"'))
    assert dkim == f"v=DKIM1; k=rsa; p={domain.dkim_public_key}"


def test_running_setup_twice_changes_nothing(api, tenant, domain, provider, zone_id, cloudflare_api):
    api.post(url(tenant, domain), body(provider, zone_id), format="json")
    writes = len(cloudflare_api.writes())

    response = api.post(url(tenant, domain), body(provider, zone_id), format="json")

    assert response.status_code == 200
    assert {r["status"] for r in response.json()["data"]["records"]} == {"unchanged"}
    assert len(cloudflare_api.writes()) == writes


def test_existing_spf_is_merged_not_duplicated(api, tenant, domain, provider, zone_id, cloudflare_api):
    cloudflare_api.add_record(zone_id, "TXT", "example.com", '"v=spf1 include:_spf.google.com ~all"')

    response = api.post(url(tenant, domain), body(provider, zone_id), format="json")

    spf = next(r for r in response.json()["data"]["records"] if r["kind"] == "spf")
    assert spf["status"] == "updated"
    assert [r["content"] for r in cloudflare_api.records_at("example.com", "TXT")] == [
        f'"v=spf1 include:_spf.google.com include:{HOST} ~all"'
    ]
    checks = {c["kind"]: c["status"] for c in response.json()["data"]["checks"]}
    assert checks["spf"] == "verified"


def test_an_spf_record_with_too_many_lookups_is_refused_and_nothing_written(api, tenant, domain, provider, zone_id, cloudflare_api):
    crowded = "v=spf1 a mx " + " ".join(f"include:s{i}.example" for i in range(8)) + " -all"
    cloudflare_api.add_record(zone_id, "TXT", "example.com", f'"{crowded}"')

    error = assert_error(api.post(url(tenant, domain), body(provider, zone_id), format="json"), 400, "SPF_TOO_MANY_LOOKUPS")

    assert error["details"]["lookups"] == 11
    assert cloudflare_api.writes() == []


def test_a_zone_name_that_does_not_match_the_zone_is_refused(api, tenant, domain, provider, zone_id):
    response = api.post(url(tenant, domain), body(provider, zone_id, zone_name="example.org"), format="json")
    assert_error(response, 400, "DNS_ZONE_MISMATCH")


def test_a_zone_the_provider_does_not_have_is_not_found(api, tenant, domain, provider, zone_id):
    response = api.post(url(tenant, domain), body(provider, "f" * 32), format="json")
    assert_error(response, 404, "DNS_ZONE_NOT_FOUND")


def test_a_domain_outside_the_zone_is_refused(api, tenant, provider, zone_id):
    other = domain_create(tenant=tenant, name="example.net")
    response = api.post(url(tenant, other), body(provider, zone_id, zone_name=""), format="json")
    assert_error(response, 400, "DNS_ZONE_MISMATCH")


def test_bad_actions_are_validation_errors(api, tenant, domain, provider, zone_id):
    error = assert_error(api.post(url(tenant, domain), body(provider, zone_id, spf_action="replace"), format="json"),
                         400, "VALIDATION_ERROR")
    assert "spf_action" in error["details"]


def test_another_users_provider_is_not_found(api, tenant, domain, other_user, cloudflare_api, zone_id):
    theirs = dns_provider_connect(owner=other_user, provider="cloudflare", label="x", credentials={"token": cloudflare_api.TOKEN})

    response = api.post(url(tenant, domain), body(theirs, zone_id), format="json")

    assert_error(response, 404, "DNS_PROVIDER_NOT_FOUND")
    assert cloudflare_api.writes() == []


def test_another_tenants_domain_is_not_found(other_api, tenant, domain, other_user, cloudflare_api, zone_id):
    theirs = dns_provider_connect(owner=other_user, provider="cloudflare", label="x", credentials={"token": cloudflare_api.TOKEN})

    response = other_api.post(url(tenant, domain), body(theirs, zone_id), format="json")

    assert_error(response, 404, "TENANT_NOT_FOUND")
    assert cloudflare_api.writes() == []


def test_a_tenant_credential_cannot_run_the_setup(cred_api, tenant, domain, provider, zone_id):
    assert_error(cred_api.post(url(tenant, domain), body(provider, zone_id), format="json"), 403, "FORBIDDEN")
