"""Planning and applying a domain's DNS setup, against each provider (Cloudflare and Cloud DNS
faked at the HTTP transport, Route 53 in moto), asserting the records as the provider stores them."""
from types import SimpleNamespace

import pytest

from dispatch_site.errors import ValidationFailed
from domains.providers.base import Zone
from domains.providers.cloudflare import CloudflareClient
from domains.providers.errors import DnsProviderUnavailable
from domains.providers.setup import apply_setup, plan_setup
from domains.records import expected_records

US = "mail.dispatch.test"
KEY = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" + "x" * 348


@pytest.fixture
def domain(settings):
    settings.DISPATCH_HOSTNAME = US
    return SimpleNamespace(
        name="example.com", verification_host="_dispatch.example.com", verification_value="dispatch-verify=tok123",
        dkim_host="dispatch._domainkey.example.com", dkim_public_key=KEY, return_path_domain="bounces.example.com",
    )


def setup(provider_zone, domain, **actions):
    options = {"spf_action": "append", "dmarc_action": "create", "dmarc_rua_email": "dmarc@example.com", **actions}
    steps = plan_setup(provider_zone.client, provider_zone.zone, expected_records(domain), include_host=US, **options)
    return {r["kind"]: r for r in apply_setup(provider_zone.client, provider_zone.zone, steps)}


def q(value):
    """A TXT value as stored at the provider: quoted strings of at most 255 bytes."""
    return " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))


def test_an_empty_zone_gets_every_record(provider_zone, domain):
    results = setup(provider_zone, domain)

    assert {k: r["status"] for k, r in results.items()} == {
        "verification": "created", "dkim": "created", "spf": "created", "dmarc": "created",
        "return_path": "created", "return_path_spf": "created",
    }
    wire = provider_zone.wire
    assert wire("_dispatch.example.com", "TXT") == ['"dispatch-verify=tok123"']
    assert wire("dispatch._domainkey.example.com", "TXT") == [q(f"v=DKIM1; k=rsa; p={KEY}")]
    assert wire("example.com", "TXT") == ['"v=spf1 include:mail.dispatch.test ~all"']
    assert wire("_dmarc.example.com", "TXT") == ['"v=DMARC1; p=none; rua=mailto:dmarc@example.com"']
    assert wire("bounces.example.com", "MX") == ["10 mail.dispatch.test"]
    assert wire("bounces.example.com", "TXT") == ['"v=spf1 include:mail.dispatch.test ~all"']


def test_running_it_again_changes_nothing(provider_zone, domain):
    setup(provider_zone, domain)
    writes = provider_zone.writes()

    again = setup(provider_zone, domain)

    assert {r["status"] for r in again.values()} == {"unchanged"}
    assert provider_zone.writes() == writes


def test_append_merges_into_the_existing_spf_and_keeps_other_txt_values(provider_zone, domain):
    provider_zone.seed("example.com", "TXT", ['"google-site-verification=abc"', '"v=spf1 include:_spf.google.com -all"'])

    results = setup(provider_zone, domain)

    assert results["spf"]["status"] == "updated"
    assert results["spf"]["previous"] == "v=spf1 include:_spf.google.com -all"
    assert provider_zone.wire("example.com", "TXT") == [
        '"google-site-verification=abc"', '"v=spf1 include:_spf.google.com include:mail.dispatch.test -all"',
    ]
    assert setup(provider_zone, domain)["spf"]["status"] == "unchanged"


def test_append_folds_two_spf_records_into_one(provider_zone, domain):
    provider_zone.seed("example.com", "TXT", ['"v=spf1 mx ~all"', '"v=spf1 include:mailgun.org ~all"'])

    results = setup(provider_zone, domain)

    assert "Merged 2 SPF records" in results["spf"]["message"]
    assert provider_zone.wire("example.com", "TXT") == ['"v=spf1 mx include:mailgun.org include:mail.dispatch.test ~all"']


def test_too_many_lookups_refuses_before_writing_anything(provider_zone, domain):
    crowded = "v=spf1 a mx " + " ".join(f"include:s{i}.example" for i in range(8)) + " -all"
    provider_zone.seed("example.com", "TXT", [q(crowded)])
    writes = provider_zone.writes()

    with pytest.raises(ValidationFailed) as raised:
        setup(provider_zone, domain)

    assert raised.value.code == "SPF_TOO_MANY_LOOKUPS" and raised.value.status == 400
    assert provider_zone.writes() == writes
    assert provider_zone.wire("_dispatch.example.com", "TXT") == []


def test_overwrite_replaces_the_spf_record(provider_zone, domain):
    provider_zone.seed("example.com", "TXT", ['"v=spf1 include:old.example -all"'])

    results = setup(provider_zone, domain, spf_action="overwrite")

    assert results["spf"]["status"] == "updated"
    assert provider_zone.wire("example.com", "TXT") == ['"v=spf1 include:mail.dispatch.test ~all"']


def test_skip_leaves_spf_and_dmarc_alone(provider_zone, domain):
    provider_zone.seed("example.com", "TXT", ['"v=spf1 -all"'])

    results = setup(provider_zone, domain, spf_action="skip", dmarc_action="skip")

    assert (results["spf"]["status"], results["dmarc"]["status"]) == ("skipped", "skipped")
    assert provider_zone.wire("example.com", "TXT") == ['"v=spf1 -all"']
    assert provider_zone.wire("_dmarc.example.com", "TXT") == []


def test_dmarc_create_keeps_an_existing_record(provider_zone, domain):
    provider_zone.seed("_dmarc.example.com", "TXT", ['"v=DMARC1; p=reject"'])

    assert setup(provider_zone, domain)["dmarc"]["status"] == "skipped"
    assert provider_zone.wire("_dmarc.example.com", "TXT") == ['"v=DMARC1; p=reject"']


def test_dmarc_update_adds_the_report_address_and_keeps_the_policy(provider_zone, domain):
    provider_zone.seed("_dmarc.example.com", "TXT", ['"v=DMARC1; p=reject; pct=100"'])

    results = setup(provider_zone, domain, dmarc_action="update")

    assert results["dmarc"]["status"] == "updated"
    assert provider_zone.wire("_dmarc.example.com", "TXT") == ['"v=DMARC1; p=reject; rua=mailto:dmarc@example.com; pct=100"']
    assert setup(provider_zone, domain, dmarc_action="update")["dmarc"]["status"] == "unchanged"


def test_an_older_dkim_key_under_the_selector_is_replaced(provider_zone, domain):
    provider_zone.seed("dispatch._domainkey.example.com", "TXT", ['"v=DKIM1; k=rsa; p=OLDKEY"'])

    assert setup(provider_zone, domain)["dkim"]["status"] == "updated"
    assert provider_zone.wire("dispatch._domainkey.example.com", "TXT") == [q(f"v=DKIM1; k=rsa; p={KEY}")]


def test_a_return_path_mx_pointing_elsewhere_is_replaced(provider_zone, domain):
    provider_zone.seed("bounces.example.com", "MX", ["10 mx.elsewhere.example"])

    result = setup(provider_zone, domain)["return_path"]

    assert (result["status"], result["previous"]) == ("updated", "10 mx.elsewhere.example")
    assert provider_zone.wire("bounces.example.com", "MX") == ["10 mail.dispatch.test"]


def test_another_tenants_verification_value_stays_next_to_ours(provider_zone, domain):
    provider_zone.seed("_dispatch.example.com", "TXT", ['"dispatch-verify=other-tenant"'])

    setup(provider_zone, domain)

    assert provider_zone.wire("_dispatch.example.com", "TXT") == ['"dispatch-verify=other-tenant"', '"dispatch-verify=tok123"']


def test_a_zone_that_does_not_hold_the_domain_is_refused(provider_zone, domain):
    domain.name, domain.verification_host = "example.org", "_dispatch.example.org"

    with pytest.raises(ValidationFailed) as raised:
        setup(provider_zone, domain)
    assert raised.value.code == "DNS_ZONE_MISMATCH"


def test_dmarc_update_needs_the_report_address(provider_zone, domain):
    with pytest.raises(ValidationFailed) as raised:
        setup(provider_zone, domain, dmarc_action="update", dmarc_rua_email=None)
    assert "dmarc_rua_email" in raised.value.details


def test_a_provider_failure_part_way_says_what_was_written_and_a_rerun_finishes(cloudflare_api, domain):
    client = CloudflareClient(token=cloudflare_api.TOKEN, max_retries=0)
    zone = Zone(id=cloudflare_api.add_zone("example.com"), name="example.com")
    options = {"include_host": US, "spf_action": "append", "dmarc_action": "create", "dmarc_rua_email": None}
    cloudflare_api.writes_before_outage = 2

    with pytest.raises(DnsProviderUnavailable) as raised:
        apply_setup(client, zone, plan_setup(client, zone, expected_records(domain), **options))

    details = raised.value.details
    assert [r["kind"] for r in details["completed"]] == ["verification", "dkim"]
    assert details["failed_record"]["kind"] == "spf" and raised.value.status == 503

    cloudflare_api.writes_before_outage = None
    results = apply_setup(client, zone, plan_setup(client, zone, expected_records(domain), **options))
    assert [r["status"] for r in results] == ["unchanged", "unchanged", "created", "created", "created", "created"]
