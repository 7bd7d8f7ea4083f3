"""Amazon Route 53 through boto3 with an access key pair.

The IAM policy needs route53:ListHostedZones, route53:ListResourceRecordSets and
route53:ChangeResourceRecordSets (on the hosted zones it should manage)."""
import boto3
import botocore.config
import botocore.exceptions

from .base import DEFAULT_TTL, RecordSet, RecordSetClient, Zone, from_presentation, normalize_name, to_presentation
from .errors import (
    DnsProviderAuthFailed,
    DnsProviderRateLimited,
    DnsProviderRequestRejected,
    DnsProviderUnavailable,
    DnsRecordConflict,
    DnsZoneNotFound,
)

_AUTH_CODES = {
    "AccessDenied",
    "AccessDeniedException",
    "AuthFailure",
    "ExpiredToken",
    "InvalidAccessKeyId",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
}
_RATE_CODES = {"Throttling", "ThrottlingException", "PriorRequestNotComplete", "RequestLimitExceeded", "TooManyRequestsException"}
_ZONE_CODES = {"NoSuchHostedZone"}
# InvalidChangeBatch covers both "conflicts with what is there" and "malformed value".
_CONFLICT_HINTS = ("already exists", "conflict", "not found", "do not match", "not permitted")
_CHANGE_COMMENT = "Dispatch automatic DNS setup"


class Route53Client(RecordSetClient):
    provider = "route53"

    def __init__(self, *, access_key, secret_key, region="us-east-1"):
        session = boto3.session.Session(
            aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region or "us-east-1"
        )
        config = botocore.config.Config(connect_timeout=10, read_timeout=20, retries={"mode": "standard", "max_attempts": 3})
        self._api = session.client("route53", config=config)

    def verify(self):
        with _translated():
            self._api.list_hosted_zones(MaxItems="1")

    def list_zones(self):
        zones = []
        with _translated():
            for page in self._api.get_paginator("list_hosted_zones").paginate():
                for hosted in page["HostedZones"]:
                    # A private zone answers only inside a VPC: records there cannot verify a domain.
                    if not hosted.get("Config", {}).get("PrivateZone"):
                        zones.append(Zone(id=hosted["Id"].rsplit("/", 1)[-1], name=normalize_name(hosted["Name"])))
        return zones

    def _get_record_set(self, zone, name, rtype):
        with _translated(zone):
            found = self._api.list_resource_record_sets(
                HostedZoneId=zone.id, StartRecordName=name, StartRecordType=rtype, MaxItems="1"
            )["ResourceRecordSets"]
        if not found or normalize_name(found[0]["Name"]) != name or found[0]["Type"] != rtype:
            return None
        raw = found[0]
        if "SetIdentifier" in raw or "AliasTarget" in raw:
            raise DnsRecordConflict(
                f"The {rtype} record at {name} uses a Route 53 routing policy or alias; edit it in Route 53 yourself."
            )
        values = tuple(from_presentation(rtype, rr["Value"]) for rr in raw.get("ResourceRecords", []))
        return RecordSet(name=name, type=rtype, ttl=int(raw.get("TTL", DEFAULT_TTL)), values=values, raw=raw)

    def _replace_record_set(self, zone, old, new):
        # DELETE of the exact old set + CREATE in one batch is atomic, and fails if someone changed
        # the set in between (optimistic concurrency, unlike UPSERT's last-writer-wins).
        changes = []
        if old is not None:
            changes.append({"Action": "DELETE", "ResourceRecordSet": old.raw})
        if new is not None:
            changes.append({
                "Action": "CREATE",
                "ResourceRecordSet": {
                    "Name": new.name + ".",
                    "Type": new.type,
                    "TTL": new.ttl,
                    "ResourceRecords": [{"Value": to_presentation(new.type, v)} for v in new.values],
                },
            })
        with _translated(zone):
            self._api.change_resource_record_sets(
                HostedZoneId=zone.id, ChangeBatch={"Comment": _CHANGE_COMMENT, "Changes": changes}
            )


class _translated:
    def __init__(self, zone=None):
        self.zone = zone

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if isinstance(exc, botocore.exceptions.ClientError):
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            code = error.get("Code") or f"HTTP {status}"
            message = error.get("Message") or "no message"
            if code in _AUTH_CODES or status in (401, 403):
                raise DnsProviderAuthFailed(
                    f"AWS rejected the access key for Route 53 ({code}: {message}). The key needs "
                    "route53:ListHostedZones, route53:ListResourceRecordSets and route53:ChangeResourceRecordSets."
                ) from exc
            if code in _RATE_CODES or status == 429:
                raise DnsProviderRateLimited(f"Route 53 is throttling requests: {message} ({code})") from exc
            if code in _ZONE_CODES:
                where = f" {self.zone.id} ({self.zone.name})" if self.zone else ""
                raise DnsZoneNotFound(f"Route 53 has no hosted zone{where} for this account: {message}") from exc
            if code == "InvalidChangeBatch" and any(h in message.lower() for h in _CONFLICT_HINTS):
                raise DnsRecordConflict(f"Route 53 refused the change: {message}") from exc
            if status >= 500:
                raise DnsProviderUnavailable(f"Route 53 failed: {message} ({code})") from exc
            raise DnsProviderRequestRejected(f"Route 53 rejected the request: {message} ({code})") from exc
        if isinstance(exc, botocore.exceptions.BotoCoreError):
            raise DnsProviderUnavailable(f"Route 53 could not be reached: {exc}") from exc
        return False
