"""The Google Cloud DNS client (google-cloud-dns + a service-account key) against Cloud DNS v1
and Google's OAuth token endpoint, faked at the requests transport."""
import json

import pytest

from domains.providers.base import Record, Zone
from domains.providers.errors import DnsProviderAuthFailed, DnsProviderRateLimited, DnsRecordConflict, DnsZoneNotFound
from domains.providers.gcp import GoogleCloudDnsClient

from .fakes import make_service_account

DKIM = "v=DKIM1; k=rsa; p=" + "Q" * 392
ZONE = Zone(id="example-com", name="example.com")


@pytest.fixture
def client(cloud_dns):
    cloud_dns.add_zone("example-com", "example.com")
    return GoogleCloudDnsClient(service_account_json=cloud_dns.service_account_json, project_id=cloud_dns.project_id)


def test_it_signs_in_as_the_service_account_and_lists_zones(cloud_dns, client):
    cloud_dns.add_zone("other-org", "other.org")

    assert client.list_zones() == [ZONE, Zone(id="other-org", name="other.org")]
    assert cloud_dns.token_grants == 1


def test_it_creates_a_txt_record_set(cloud_dns, client):
    client.create_record(ZONE, "_dispatch.example.com", "TXT", "dispatch-verify=abc123")

    assert cloud_dns.changes == [{
        "additions": [{"name": "_dispatch.example.com.", "type": "TXT", "ttl": 300, "rrdatas": ['"dispatch-verify=abc123"']}],
        "deletions": [],
    }]
    method, path, query = next(r for r in cloud_dns.requests if r[1].endswith("/rrsets"))
    assert query["name"] == "_dispatch.example.com." and query["type"] == "TXT"


def test_a_long_dkim_key_is_split_into_255_byte_strings(cloud_dns, client):
    client.create_record(ZONE, "dispatch._domainkey.example.com", "TXT", DKIM)

    assert cloud_dns.rrset("example-com", "dispatch._domainkey.example.com.", "TXT")["rrdatas"] == [f'"{DKIM[:255]}" "{DKIM[255:]}"']
    assert [r.value for r in client.list_records(ZONE, "dispatch._domainkey.example.com", "TXT")] == [DKIM]


def test_it_creates_an_mx_record_with_a_fully_qualified_target(cloud_dns, client):
    client.create_record(ZONE, "bounces.example.com", "MX", "10 mail.dispatch.test")

    assert cloud_dns.rrset("example-com", "bounces.example.com.", "MX")["rrdatas"] == ["10 mail.dispatch.test."]
    assert client.list_records(ZONE, "bounces.example.com", "MX") == [
        Record(name="bounces.example.com", type="MX", value="10 mail.dispatch.test", ttl=300)
    ]


def test_adding_to_an_existing_set_replaces_it_in_one_change(cloud_dns, client):
    cloud_dns.add_rrset("example-com", "example.com.", "TXT", ['"google-site-verification=xyz"'], ttl=3600)

    client.create_record(ZONE, "example.com", "TXT", "v=spf1 include:mail.dispatch.test ~all")

    assert cloud_dns.changes[-1] == {
        "additions": [{"name": "example.com.", "type": "TXT", "ttl": 3600,
                       "rrdatas": ['"google-site-verification=xyz"', '"v=spf1 include:mail.dispatch.test ~all"']}],
        "deletions": [{"name": "example.com.", "type": "TXT", "ttl": 3600, "rrdatas": ['"google-site-verification=xyz"']}],
    }


def test_update_and_delete_touch_only_their_value(cloud_dns, client):
    cloud_dns.add_rrset("example-com", "example.com.", "TXT", ['"keep"', '"v=spf1 -all"'])
    spf = next(r for r in client.list_records(ZONE, "example.com", "TXT") if r.value.startswith("v=spf1"))

    client.update_record(ZONE, spf, "v=spf1 include:mail.dispatch.test -all")
    assert cloud_dns.rrset("example-com", "example.com.", "TXT")["rrdatas"] == ['"keep"', '"v=spf1 include:mail.dispatch.test -all"']

    keep = next(r for r in client.list_records(ZONE, "example.com", "TXT") if r.value == "keep")
    client.delete_record(ZONE, keep)
    assert cloud_dns.rrset("example-com", "example.com.", "TXT")["rrdatas"] == ['"v=spf1 include:mail.dispatch.test -all"']


def test_a_set_changed_by_someone_else_meanwhile_is_a_conflict(cloud_dns, client):
    cloud_dns.add_rrset("example-com", "example.com.", "TXT", ['"v=spf1 -all"'])
    spf = client.list_records(ZONE, "example.com", "TXT")[0]
    # Between our read and our write, another value appears: the exact deletion no longer matches.
    original = client._get_record_set

    def stale_read(zone, name, rtype):
        record_set = original(zone, name, rtype)
        cloud_dns.add_rrset("example-com", "example.com.", "TXT", ['"v=spf1 -all"', '"added meanwhile"'])
        return record_set

    client._get_record_set = stale_read
    with pytest.raises(DnsRecordConflict) as raised:
        client.update_record(ZONE, spf, "v=spf1 include:mail.dispatch.test -all")
    assert raised.value.status == 409 and raised.value.code == "DNS_RECORD_CONFLICT"
    assert cloud_dns.rrset("example-com", "example.com.", "TXT")["rrdatas"] == ['"v=spf1 -all"', '"added meanwhile"']


def test_an_unknown_managed_zone_is_zone_not_found(client):
    with pytest.raises(DnsZoneNotFound) as raised:
        client.list_records(Zone(id="nope", name="nope.example"), "nope.example", "TXT")
    assert raised.value.status == 404


def test_a_key_google_does_not_know_is_an_auth_error(cloud_dns):
    stranger_key, _ = make_service_account(cloud_dns.project_id)  # same account name, another key

    with pytest.raises(DnsProviderAuthFailed) as raised:
        GoogleCloudDnsClient(service_account_json=stranger_key, project_id=cloud_dns.project_id).verify()
    assert raised.value.code == "DNS_PROVIDER_AUTH_FAILED" and "invalid_grant" in raised.value.message


def test_a_project_the_account_cannot_use_is_an_auth_error(cloud_dns):
    with pytest.raises(DnsProviderAuthFailed) as raised:
        GoogleCloudDnsClient(service_account_json=cloud_dns.service_account_json, project_id="someone-elses").verify()
    assert "someone-elses" in raised.value.message


@pytest.mark.parametrize("key", ["not json", json.dumps({"type": "authorized_user"}), json.dumps({"type": "service_account"})])
def test_something_that_is_not_a_service_account_key_is_refused(key):
    with pytest.raises(DnsProviderAuthFailed) as raised:
        GoogleCloudDnsClient(service_account_json=key, project_id="p")
    assert "service-account key" in raised.value.message


def test_rate_limiting_is_reported(cloud_dns, client):
    cloud_dns.fail_next.append((429, "Quota exceeded for quota metric 'Read requests'", "rateLimitExceeded", "RESOURCE_EXHAUSTED"))

    with pytest.raises(DnsProviderRateLimited) as raised:
        client.list_zones()
    assert raised.value.status == 429
