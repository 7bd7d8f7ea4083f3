"""Verification against the loopback DNS server: the shapes real DNS data comes in."""
import time

import pytest

from domains.models import Domain
from domains.selectors import sending_domain_for
from tests.domains.conftest import publish

pytestmark = pytest.mark.django_db


def verify(api, tenant, domain_id):
    r = api.post(f"/api/v1/dispatch/tenants/{tenant.id}/domains/{domain_id}/verify")
    assert r.status_code == 200, r.content
    body = r.json()["data"]
    return body, {rec["kind"]: rec for rec in body["records"]}


def expected(data, kind):
    return next(r for r in data["dns_records"] if r["kind"] == kind)


def test_multi_string_txt_records_are_joined(api, tenant, add_domain, dns_server):
    data = add_domain("example.com")
    token = expected(data, "verification")
    dns_server.add(token["host"], "TXT", [token["value"][:7], token["value"][7:]])
    dkim = expected(data, "dkim")
    dns_server.add(dkim["host"], "TXT", [dkim["value"][:100], dkim["value"][100:300], dkim["value"][300:]])
    body, records = verify(api, tenant, data["domain"]["id"])
    assert body["verified"] is True
    assert records["dkim"]["status"] == "verified"
    assert records["verification"]["found"] == [token["value"]]


def test_several_txt_records_at_one_name(api, tenant, add_domain, dns_server):
    data = add_domain("example.com")
    token = expected(data, "verification")
    dns_server.add(token["host"], "TXT", "dispatch-verify=someone-elses-token")
    dns_server.add(token["host"], "TXT", token["value"])
    dns_server.add("example.com", "TXT", "google-site-verification=abc")
    dns_server.add("example.com", "TXT", "v=spf1 include:_spf.google.com include:mail.dispatch.test ~all")
    dns_server.add("_dmarc.example.com", "TXT", "v=DMARC1; p=reject; rua=mailto:d@example.com")
    body, records = verify(api, tenant, data["domain"]["id"])
    assert body["verified"] is True
    assert len(records["verification"]["found"]) == 2
    assert records["spf"]["status"] == "verified" and len(records["spf"]["found"]) == 2
    assert records["dmarc"]["status"] == "verified"


def test_case_quotes_and_trailing_dots_are_tolerated(api, tenant, add_domain, dns_server, settings):
    data = add_domain("example.com")
    token = expected(data, "verification")
    dns_server.add(token["host"].upper() + ".", "TXT", f'"{token["value"].upper()}"')
    dns_server.add(data["domain"]["return_path_domain"], "MX", f"10 {settings.DISPATCH_HOSTNAME.upper()}.")
    dns_server.add("EXAMPLE.com.", "TXT", f"V=SPF1 +INCLUDE:{settings.DISPATCH_HOSTNAME.upper()} -all")
    body, records = verify(api, tenant, data["domain"]["id"])
    assert body["verified"] is True
    assert records["return_path"]["status"] == "verified"
    assert records["return_path"]["found"] == [f"10 {settings.DISPATCH_HOSTNAME}"]
    assert records["spf"]["status"] == "verified"


def test_dkim_through_a_cname(api, tenant, add_domain, dns_server):
    data = add_domain("example.com")
    dkim = expected(data, "dkim")
    dns_server.add(dkim["host"], "CNAME", "keys.dns-host.example.")
    dns_server.add("keys.dns-host.example", "TXT", dkim["value"])
    _, records = verify(api, tenant, data["domain"]["id"])
    assert records["dkim"]["status"] == "verified"


def test_wrong_values_are_mismatches_with_an_explanation(api, tenant, add_domain, dns_server):
    data = add_domain("example.com")
    dns_server.add(expected(data, "verification")["host"], "TXT", "dispatch-verify=wrong")
    dns_server.add(expected(data, "dkim")["host"], "TXT", "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAother")
    dns_server.add("example.com", "TXT", "v=spf1 include:_spf.google.com ~all")
    dns_server.add("_dmarc.example.com", "TXT", "v=DMARC1; p=none")
    dns_server.add("_dmarc.example.com", "TXT", "v=DMARC1; p=reject")
    dns_server.add(data["domain"]["return_path_domain"], "MX", "10 mx.elsewhere.example.")
    dns_server.add(data["domain"]["return_path_domain"], "TXT", "v=spf1 -all")
    dns_server.add(data["domain"]["return_path_domain"], "TXT", "v=spf1 include:mail.dispatch.test -all")
    body, records = verify(api, tenant, data["domain"]["id"])
    assert body["verified"] is False and body["domain"]["status"] == "pending"
    assert {k: r["status"] for k, r in records.items()} == {
        "verification": "mismatch", "dkim": "mismatch", "spf": "mismatch", "dmarc": "mismatch",
        "return_path": "mismatch", "return_path_spf": "mismatch",
    }
    assert "none is dispatch-verify=" in records["verification"]["message"]
    assert "different public key" in records["dkim"]["message"]
    assert "does not contain include:mail.dispatch.test" in records["spf"]["message"]
    assert "2 DMARC records" in records["dmarc"]["message"]
    assert "must point to mail.dispatch.test" in records["return_path"]["message"]
    assert "2 SPF records" in records["return_path_spf"]["message"]
    assert records["return_path"]["found"] == ["10 mx.elsewhere.example"]


def test_nxdomain_and_nodata_are_reported_as_missing(api, tenant, add_domain, dns_server):
    data = add_domain("example.com")
    dns_server.add("example.com", "A", "192.0.2.1")  # the domain exists, but has no TXT
    _, records = verify(api, tenant, data["domain"]["id"])
    assert records["spf"]["status"] == "missing"
    assert records["spf"]["message"] == "example.com has no TXT record: add it."
    assert records["verification"]["status"] == "missing"
    assert "does not exist in DNS (NXDOMAIN)" in records["verification"]["message"]


def test_servfail_is_an_error_with_a_clear_message(api, tenant, add_domain, dns_server):
    data = add_domain("example.com")
    publish(dns_server, data["dns_records"])
    dns_server.fail(expected(data, "verification")["host"], "servfail")
    body, records = verify(api, tenant, data["domain"]["id"])
    assert body["verified"] is False
    assert records["verification"]["status"] == "error"
    assert "SERVFAIL" in records["verification"]["message"]
    assert records["dkim"]["status"] == "verified"  # the other records are still reported


def test_timeout_is_an_error_and_lookups_run_concurrently(api, tenant, add_domain, dns_server, settings):
    settings.DISPATCH_DNS_TIMEOUT = 0.5
    data = add_domain("example.com")
    for record in data["dns_records"]:
        dns_server.fail(record["host"], "timeout")
    started = time.monotonic()
    body, records = verify(api, tenant, data["domain"]["id"])
    elapsed = time.monotonic() - started
    assert body["verified"] is False
    assert {r["status"] for r in records.values()} == {"error"}
    assert "timed out after 0.5s" in records["verification"]["message"]
    assert elapsed < 2.0  # six lookups of 0.5 s each, in parallel


def test_same_domain_in_two_tenants_needs_verification_by_each(
    api, tenant, add_domain, other_api, other_tenant, dns_server, settings
):
    mine = add_domain("example.com")
    theirs = add_domain("example.com", client=other_api, tenant_id=other_tenant.id)
    assert mine["domain"]["dkim_selector"] == settings.DISPATCH_DKIM_SELECTOR
    assert theirs["domain"]["dkim_selector"] != mine["domain"]["dkim_selector"]
    assert expected(theirs, "dkim")["host"] != expected(mine, "dkim")["host"]
    assert expected(theirs, "verification")["value"] != expected(mine, "verification")["value"]

    publish(dns_server, mine["dns_records"])
    assert verify(api, tenant, mine["domain"]["id"])[0]["verified"] is True
    body, _ = verify(other_api, other_tenant, theirs["domain"]["id"])
    assert body["verified"] is False  # my token does not verify their claim
    assert sending_domain_for(tenant=tenant, address="a@example.com") is not None
    assert sending_domain_for(tenant=other_tenant, address="a@example.com") is None

    publish(dns_server, theirs["dns_records"], kinds={"verification", "dkim"})
    body, records = verify(other_api, other_tenant, theirs["domain"]["id"])
    assert body["verified"] is True and records["dkim"]["status"] == "verified"
    _, my_records = verify(api, tenant, mine["domain"]["id"])
    assert my_records["verification"]["status"] == "verified" and my_records["dkim"]["status"] == "verified"
    assert sending_domain_for(tenant=other_tenant, address="a@example.com").id == Domain.objects.get(
        pk=theirs["domain"]["id"]
    ).id


def test_unreachable_nameserver_is_an_error_not_a_500(api, tenant, add_domain, settings):
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings.DISPATCH_DNS_NAMESERVERS = [("127.0.0.1", closed_port)]
    settings.DISPATCH_DNS_TIMEOUT = 0.5
    data = add_domain("example.com")
    body, records = verify(api, tenant, data["domain"]["id"])
    assert body["verified"] is False
    assert {r["status"] for r in records.values()} == {"error"}
