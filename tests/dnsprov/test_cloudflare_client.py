"""The Cloudflare client against Cloudflare's API v4 shapes, faked at the httpx transport."""
import pytest

from domains.providers.base import Record, Zone
from domains.providers.cloudflare import CloudflareClient
from domains.providers.errors import DnsProviderAuthFailed, DnsProviderRateLimited, DnsRecordConflict, DnsZoneNotFound

DKIM = "v=DKIM1; k=rsa; p=" + "M" * 392


@pytest.fixture
def zone(cloudflare_api):
    return Zone(id=cloudflare_api.add_zone("example.com"), name="example.com")


@pytest.fixture
def client(cloudflare_api):
    return CloudflareClient(token=cloudflare_api.TOKEN, max_retries=0)


def test_it_lists_every_zone_across_pages(cloudflare_api, client):
    names = [f"site{i:02}.example" for i in range(60)]
    ids = [cloudflare_api.add_zone(n) for n in names]

    zones = client.list_zones()

    assert zones == [Zone(id=i, name=n) for i, n in zip(ids, names)]
    pages = [q.get("page", "1") for m, p, q, _ in cloudflare_api.requests if p == "/zones"]
    assert len(pages) >= 2


def test_it_creates_a_txt_record_quoted_as_cloudflare_documents(cloudflare_api, client, zone):
    client.create_record(zone, "_dispatch.example.com", "TXT", "dispatch-verify=abc123")

    method, path, _, body = cloudflare_api.writes()[0]
    assert (method, path) == ("POST", f"/zones/{zone.id}/dns_records")
    assert body == {"name": "_dispatch.example.com", "type": "TXT", "ttl": 300, "content": '"dispatch-verify=abc123"'}
    assert [r["content"] for r in cloudflare_api.records_at("_dispatch.example.com")] == ['"dispatch-verify=abc123"']


def test_a_long_dkim_key_is_split_into_255_byte_strings(cloudflare_api, client, zone):
    client.create_record(zone, "dispatch._domainkey.example.com", "TXT", DKIM)

    content = cloudflare_api.records_at("dispatch._domainkey.example.com")[0]["content"]
    assert content == f'"{DKIM[:255]}" "{DKIM[255:]}"'
    assert client.list_records(zone, "dispatch._domainkey.example.com", "TXT")[0].value == DKIM


def test_it_creates_an_mx_record_with_priority(cloudflare_api, client, zone):
    client.create_record(zone, "bounces.example.com", "MX", "10 Mail.Dispatch.Test.")

    body = cloudflare_api.writes()[0][3]
    assert body == {"name": "bounces.example.com", "type": "MX", "ttl": 300, "content": "mail.dispatch.test", "priority": 10}
    assert client.list_records(zone, "bounces.example.com", "MX") == [
        Record(name="bounces.example.com", type="MX", value="10 mail.dispatch.test", ttl=300,
               id=cloudflare_api.records_at("bounces.example.com")[0]["id"]),
    ]


def test_it_lists_only_the_records_at_that_exact_name_and_type(cloudflare_api, client, zone):
    cloudflare_api.add_record(zone.id, "TXT", "example.com", '"v=spf1 include:_spf.google.com ~all"')
    cloudflare_api.add_record(zone.id, "TXT", "example.com", "google-site-verification=xyz")  # stored unquoted
    cloudflare_api.add_record(zone.id, "TXT", "www.example.com", '"other"')
    cloudflare_api.add_record(zone.id, "MX", "example.com", "aspmx.l.google.com", priority=1)

    records = client.list_records(zone, "Example.COM.", "TXT")

    assert sorted(r.value for r in records) == ["google-site-verification=xyz", "v=spf1 include:_spf.google.com ~all"]
    query = cloudflare_api.requests[-1][2]
    assert query["name.exact"] == "example.com" and query["type"] == "TXT"


def test_update_patches_only_that_record(cloudflare_api, client, zone):
    spf_id = cloudflare_api.add_record(zone.id, "TXT", "example.com", '"v=spf1 mx -all"', ttl=3600)
    other_id = cloudflare_api.add_record(zone.id, "TXT", "example.com", '"keep-me"')
    spf = next(r for r in client.list_records(zone, "example.com", "TXT") if r.id == spf_id)

    client.update_record(zone, spf, "v=spf1 mx include:mail.dispatch.test -all")

    method, path, _, body = cloudflare_api.writes()[-1]
    assert (method, path) == ("PATCH", f"/zones/{zone.id}/dns_records/{spf_id}")
    assert body == {"name": "example.com", "type": "TXT", "ttl": 3600, "content": '"v=spf1 mx include:mail.dispatch.test -all"'}
    assert cloudflare_api.records[other_id]["content"] == '"keep-me"'


def test_delete_removes_the_record(cloudflare_api, client, zone):
    record_id = cloudflare_api.add_record(zone.id, "TXT", "_dmarc.example.com", '"v=DMARC1; p=none"')
    record = client.list_records(zone, "_dmarc.example.com", "TXT")[0]

    client.delete_record(zone, record)

    assert record_id not in cloudflare_api.records
    assert cloudflare_api.writes()[-1][:2] == ("DELETE", f"/zones/{zone.id}/dns_records/{record_id}")


def test_verify_accepts_a_working_token(cloudflare_api, client):
    client.verify()
    assert cloudflare_api.requests[0][:2] == ("GET", "/zones")


@pytest.mark.parametrize("token", ["not-a-token", "x" * 40], ids=["malformed", "unknown"])
def test_a_rejected_token_is_an_auth_error(cloudflare_api, token):
    with pytest.raises(DnsProviderAuthFailed) as raised:
        CloudflareClient(token=token, max_retries=0).verify()
    assert raised.value.status == 400 and raised.value.code == "DNS_PROVIDER_AUTH_FAILED"
    assert "Zone:Read and DNS:Edit" in raised.value.message


def test_an_unknown_zone_is_zone_not_found(client):
    with pytest.raises(DnsZoneNotFound) as raised:
        client.list_records(Zone(id="0" * 32, name="nope.example"), "nope.example", "TXT")
    assert raised.value.status == 404 and raised.value.code == "DNS_ZONE_NOT_FOUND"


def test_a_cname_at_the_name_is_a_record_conflict(cloudflare_api, client, zone):
    cloudflare_api.add_record(zone.id, "CNAME", "bounces.example.com", "elsewhere.example.net")

    with pytest.raises(DnsRecordConflict) as raised:
        client.create_record(zone, "bounces.example.com", "MX", "10 mail.dispatch.test")
    assert raised.value.status == 409 and "81054" in raised.value.message


def test_rate_limiting_is_reported_with_its_retry_after(cloudflare_api, client, zone):
    cloudflare_api.fail_next.append(
        (429, [{"code": 971, "message": "Please wait and consider throttling your request speed"}], {"Retry-After": "7"})
    )

    with pytest.raises(DnsProviderRateLimited) as raised:
        client.list_zones()
    assert raised.value.status == 429 and raised.value.code == "DNS_PROVIDER_RATE_LIMITED"
    assert raised.value.retry_after == 7
