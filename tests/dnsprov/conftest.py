"""Fixtures: each DNS provider faked at its HTTP transport (moto for Route 53)."""
import json

import boto3
import pytest
import responses
from moto import mock_aws

from .fakes import FakeCloudDns, FakeCloudflare, make_service_account

AWS_KEYS = {"access_key": "AKIAIOSFODNN7EXAMPLE", "secret_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}


@pytest.fixture
def cloudflare_api(monkeypatch):
    """The fake Cloudflare API; every CloudflareClient built during the test talks to it."""
    fake = FakeCloudflare()
    monkeypatch.setattr("domains.providers.cloudflare.make_http_client", fake.http_client)
    return fake


@pytest.fixture
def route53():
    """moto's Route 53; yields a boto3 client to arrange and inspect hosted zones."""
    with mock_aws():
        yield boto3.client(
            "route53", region_name="us-east-1", aws_access_key_id=AWS_KEYS["access_key"],
            aws_secret_access_key=AWS_KEYS["secret_key"],
        )


@pytest.fixture(scope="session")
def gcp_service_account():
    return make_service_account()


@pytest.fixture
def cloud_dns(gcp_service_account):
    """The fake Google Cloud DNS API and OAuth token endpoint (every `requests` call is mocked)."""
    key_json, public_key = gcp_service_account
    info = json.loads(key_json)
    fake = FakeCloudDns(info["project_id"], public_key, info["client_email"])
    fake.service_account_json = key_json
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        fake.install(mock)
        fake.mock = mock
        yield fake


class ZoneUnderTest:
    """One zone "example.com" at one provider, with the provider's stored (wire) form exposed."""

    def __init__(self, provider, client, zone, seed, wire, writes):
        self.provider, self.client, self.zone = provider, client, zone
        self.seed = seed  # seed(name, rtype, [wire values])
        self.wire = wire  # wire(name, rtype) -> sorted wire values stored at the provider
        self.writes = writes  # writes() -> number of write calls the provider received


def _cloudflare_zone(request):
    from domains.providers.base import Zone
    from domains.providers.cloudflare import CloudflareClient

    fake = request.getfixturevalue("cloudflare_api")
    zone = Zone(id=fake.add_zone("example.com"), name="example.com")

    def seed(name, rtype, values):
        for value in values:
            if rtype == "MX":
                priority, host = value.split()
                fake.add_record(zone.id, "MX", name, host, priority=int(priority))
            else:
                fake.add_record(zone.id, rtype, name, value)

    def wire(name, rtype):
        return sorted(
            f"{r['priority']} {r['content']}" if rtype == "MX" else r["content"] for r in fake.records_at(name, rtype)
        )

    return ZoneUnderTest("cloudflare", CloudflareClient(token=fake.TOKEN, max_retries=0), zone, seed, wire,
                         lambda: len(fake.writes()))


def _route53_zone(request):
    from domains.providers.base import Zone
    from domains.providers.route53 import Route53Client

    api = request.getfixturevalue("route53")
    hosted = api.create_hosted_zone(Name="example.com", CallerReference="example.com")["HostedZone"]
    zone = Zone(id=hosted["Id"].rsplit("/", 1)[-1], name="example.com")
    client = Route53Client(**AWS_KEYS)
    calls = []
    client._api.meta.events.register("before-call.route53.ChangeResourceRecordSets", lambda **kw: calls.append(1))

    def seed(name, rtype, values):
        api.change_resource_record_sets(HostedZoneId=zone.id, ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": {
            "Name": name, "Type": rtype, "TTL": 300, "ResourceRecords": [{"Value": v} for v in values]}}]})

    def wire(name, rtype):
        sets = api.list_resource_record_sets(HostedZoneId=zone.id, StartRecordName=name, StartRecordType=rtype, MaxItems="1")
        found = [s for s in sets["ResourceRecordSets"] if s["Name"] == name + "." and s["Type"] == rtype]
        values = [rr["Value"] for rr in found[0]["ResourceRecords"]] if found else []
        return sorted(v.removesuffix(".") if rtype == "MX" else v for v in values)

    return ZoneUnderTest("route53", client, zone, seed, wire, lambda: len(calls))


def _gcp_zone(request):
    from domains.providers.base import Zone
    from domains.providers.gcp import GoogleCloudDnsClient

    fake = request.getfixturevalue("cloud_dns")
    fake.add_zone("example-com", "example.com")
    client = GoogleCloudDnsClient(service_account_json=fake.service_account_json, project_id=fake.project_id)

    def seed(name, rtype, values):
        fake.add_rrset("example-com", name + ".", rtype, [v + "." if rtype == "MX" else v for v in values])

    def wire(name, rtype):
        rrset = fake.rrset("example-com", name + ".", rtype)
        return sorted(v.removesuffix(".") if rtype == "MX" else v for v in (rrset["rrdatas"] if rrset else []))

    return ZoneUnderTest("gcp", client, Zone(id="example-com", name="example.com"), seed, wire, lambda: len(fake.changes))


@pytest.fixture(params=["cloudflare", "route53", "gcp"])
def provider_zone(request):
    """The zone example.com at each provider in turn (tests run once per provider)."""
    return {"cloudflare": _cloudflare_zone, "route53": _route53_zone, "gcp": _gcp_zone}[request.param](request)
