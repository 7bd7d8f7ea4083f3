"""The Route 53 client through boto3 against moto's Route 53 emulation."""
import botocore.stub
import pytest
from moto.core import set_initial_no_auth_action_count

from domains.providers.base import Record, Zone
from domains.providers.errors import DnsProviderAuthFailed, DnsRecordConflict, DnsZoneNotFound
from domains.providers.route53 import Route53Client

from .conftest import AWS_KEYS

DKIM = "v=DKIM1; k=rsa; p=" + "A" * 392


def hosted_zone(route53, name, private=False):
    kwargs = {"HostedZoneConfig": {"PrivateZone": True, "Comment": ""}, "VPC": {"VPCRegion": "us-east-1", "VPCId": "vpc-1"}} if private else {}
    zone = route53.create_hosted_zone(Name=name, CallerReference=name, **kwargs)["HostedZone"]
    return Zone(id=zone["Id"].rsplit("/", 1)[-1], name=name)


def rrset(route53, zone, name, rtype):
    found = route53.list_resource_record_sets(HostedZoneId=zone.id, StartRecordName=name, StartRecordType=rtype, MaxItems="1")
    sets = [s for s in found["ResourceRecordSets"] if s["Name"] == name + "." and s["Type"] == rtype]
    return sets[0] if sets else None


def put(route53, zone, name, rtype, values, ttl=300):
    route53.change_resource_record_sets(HostedZoneId=zone.id, ChangeBatch={"Changes": [{
        "Action": "UPSERT",
        "ResourceRecordSet": {"Name": name, "Type": rtype, "TTL": ttl, "ResourceRecords": [{"Value": v} for v in values]},
    }]})


@pytest.fixture
def client(route53):
    return Route53Client(**AWS_KEYS, region="us-east-1")


@pytest.fixture
def zone(route53):
    return hosted_zone(route53, "example.com")


def test_it_lists_public_hosted_zones_by_bare_id(route53, client):
    public = hosted_zone(route53, "example.com")
    hosted_zone(route53, "internal.example", private=True)

    assert client.list_zones() == [public]
    assert not public.id.startswith("/hostedzone/")


def test_it_creates_a_txt_record_as_a_quoted_string(route53, client, zone):
    client.create_record(zone, "_dispatch.example.com", "TXT", "dispatch-verify=abc123")

    assert rrset(route53, zone, "_dispatch.example.com", "TXT") == {
        "Name": "_dispatch.example.com.", "Type": "TXT", "TTL": 300, "ResourceRecords": [{"Value": '"dispatch-verify=abc123"'}],
    }


def test_a_long_dkim_key_is_split_into_255_byte_strings(route53, client, zone):
    client.create_record(zone, "dispatch._domainkey.example.com", "TXT", DKIM)

    value = rrset(route53, zone, "dispatch._domainkey.example.com", "TXT")["ResourceRecords"][0]["Value"]
    assert value == f'"{DKIM[:255]}" "{DKIM[255:]}"'
    assert [r.value for r in client.list_records(zone, "dispatch._domainkey.example.com", "TXT")] == [DKIM]


def test_it_creates_an_mx_record_with_a_fully_qualified_target(route53, client, zone):
    client.create_record(zone, "bounces.example.com", "MX", "10 mail.dispatch.test")

    assert rrset(route53, zone, "bounces.example.com", "MX")["ResourceRecords"] == [{"Value": "10 mail.dispatch.test."}]
    assert client.list_records(zone, "bounces.example.com", "MX") == [
        Record(name="bounces.example.com", type="MX", value="10 mail.dispatch.test", ttl=300)
    ]


def test_a_new_value_joins_the_existing_record_set(route53, client, zone):
    put(route53, zone, "example.com", "TXT", ['"google-site-verification=xyz"'], ttl=3600)

    client.create_record(zone, "example.com", "TXT", "v=spf1 include:mail.dispatch.test ~all")

    assert rrset(route53, zone, "example.com", "TXT") == {
        "Name": "example.com.", "Type": "TXT", "TTL": 3600,
        "ResourceRecords": [{"Value": '"google-site-verification=xyz"'}, {"Value": '"v=spf1 include:mail.dispatch.test ~all"'}],
    }


def test_multi_string_values_are_read_as_one_logical_value(route53, client, zone):
    put(route53, zone, "example.com", "TXT", ['"v=spf1 include:_spf.google.com " "include:mailgun.org ~all"'])

    assert [r.value for r in client.list_records(zone, "example.com", "TXT")] == [
        "v=spf1 include:_spf.google.com include:mailgun.org ~all"
    ]


def test_update_replaces_one_value_and_keeps_the_others(route53, client, zone):
    put(route53, zone, "example.com", "TXT", ['"google-site-verification=xyz"', '"v=spf1 mx -all"'])
    spf = next(r for r in client.list_records(zone, "example.com", "TXT") if r.value.startswith("v=spf1"))

    client.update_record(zone, spf, "v=spf1 mx include:mail.dispatch.test -all")

    assert rrset(route53, zone, "example.com", "TXT")["ResourceRecords"] == [
        {"Value": '"google-site-verification=xyz"'}, {"Value": '"v=spf1 mx include:mail.dispatch.test -all"'},
    ]


def test_delete_removes_one_value_then_the_whole_set(route53, client, zone):
    put(route53, zone, "example.com", "TXT", ['"a"', '"b"'])
    first, second = client.list_records(zone, "example.com", "TXT")

    client.delete_record(zone, first)
    assert rrset(route53, zone, "example.com", "TXT")["ResourceRecords"] == [{"Value": '"b"'}]

    client.delete_record(zone, second)
    assert rrset(route53, zone, "example.com", "TXT") is None


def test_an_unknown_hosted_zone_is_zone_not_found(client):
    with pytest.raises(DnsZoneNotFound) as raised:
        client.list_records(Zone(id="ZNOSUCHZONE", name="example.com"), "example.com", "TXT")
    assert raised.value.status == 404 and raised.value.code == "DNS_ZONE_NOT_FOUND"


@set_initial_no_auth_action_count(0)
def test_an_unknown_access_key_is_an_auth_error(route53):
    # moto checks signatures against its IAM users from here on; these keys belong to none.
    with pytest.raises(DnsProviderAuthFailed) as raised:
        Route53Client(access_key="AKIAUNKNOWNKEY000000", secret_key="nope").verify()
    assert raised.value.status == 400 and "route53:ChangeResourceRecordSets" in raised.value.message


def test_a_conflicting_change_batch_is_a_record_conflict(client, zone):
    # moto does not model CNAME conflicts; this is Route 53's documented InvalidChangeBatch answer.
    stubber = botocore.stub.Stubber(client._api)
    stubber.add_response("list_resource_record_sets", {
        "ResourceRecordSets": [], "IsTruncated": False, "MaxItems": "1",
    })
    stubber.add_client_error(
        "change_resource_record_sets", service_error_code="InvalidChangeBatch", http_status_code=400,
        service_message="[RRSet of type MX with DNS name bounces.example.com. is not permitted because a conflicting "
                        "RRSet of type CNAME with the same DNS name already exists in zone example.com.]",
    )
    with stubber, pytest.raises(DnsRecordConflict) as raised:
        client.create_record(zone, "bounces.example.com", "MX", "10 mail.dispatch.test")
    assert raised.value.status == 409 and "conflicting RRSet of type CNAME" in raised.value.message
