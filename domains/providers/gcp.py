"""Google Cloud DNS through `google-cloud-dns` with a service-account key (JSON).

The service account needs the "DNS Administrator" role (roles/dns.admin) on the project,
or at least dns.managedZones.list, dns.resourceRecordSets.list and dns.changes.create."""
import json
from itertools import islice

import google.api_core.exceptions as google_errors
import google.auth.exceptions
import requests
from google.cloud import dns
from google.oauth2 import service_account

from .base import RecordSet, RecordSetClient, Zone, from_presentation, normalize_name, to_presentation
from .errors import (
    DnsProviderAuthFailed,
    DnsProviderRateLimited,
    DnsProviderRequestRejected,
    DnsProviderUnavailable,
    DnsRecordConflict,
    DnsZoneNotFound,
)

SCOPES = ["https://www.googleapis.com/auth/ndev.clouddns.readwrite"]
# google-auth posts the signed grant to the key file's own `token_uri`, and the key file is the
# user's: anything but Google's token endpoints would make us POST wherever it says (SSRF).
GOOGLE_TOKEN_URIS = frozenset({
    "https://oauth2.googleapis.com/token",
    "https://accounts.google.com/o/oauth2/token",
    "https://www.googleapis.com/oauth2/v4/token",
})
_RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"}


def service_account_credentials(service_account_json):
    """Credentials from a key file's content (str or dict); DnsProviderAuthFailed if it is not one."""
    try:
        info = json.loads(service_account_json) if isinstance(service_account_json, str) else dict(service_account_json)
        if info.get("type") != "service_account":
            raise ValueError('"type" is not "service_account"')
        if info.get("token_uri") not in GOOGLE_TOKEN_URIS:
            raise ValueError('"token_uri" must be Google\'s token endpoint, https://oauth2.googleapis.com/token')
        return service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
    except (ValueError, TypeError, KeyError) as exc:
        raise DnsProviderAuthFailed(f"service_account_json is not a Google service-account key: {exc}") from None


class GoogleCloudDnsClient(RecordSetClient):
    provider = "gcp"

    def __init__(self, *, service_account_json, project_id):
        self._project = project_id
        self._api = dns.Client(project=project_id, credentials=service_account_credentials(service_account_json))

    def verify(self):
        with _translated(project=self._project):
            list(islice(self._api.list_zones(max_results=1), 1))

    def list_zones(self):
        with _translated(project=self._project):
            # The managed zone's name is what the API addresses it by, so it is our zone id.
            return [Zone(id=z.name, name=normalize_name(z.dns_name)) for z in self._api.list_zones()]

    def _managed_zone(self, zone):
        return self._api.zone(zone.id, dns_name=zone.name + ".")

    def _get_record_set(self, zone, name, rtype):
        managed = self._managed_zone(zone)
        with _translated(zone=zone, project=self._project):
            found = managed.list_resource_record_sets()
            # The rrsets.list API filters by name and type; the library just does not expose it.
            found.extra_params = {"name": name + ".", "type": rtype}
            for raw in found:
                if normalize_name(raw.name) == name and raw.record_type == rtype:
                    values = tuple(from_presentation(rtype, v) for v in raw.rrdatas)
                    return RecordSet(name=name, type=rtype, ttl=int(raw.ttl), values=values, raw=raw)
        return None

    def _replace_record_set(self, zone, old, new):
        managed = self._managed_zone(zone)
        changes = managed.changes()
        # Cloud DNS applies deletions only if they match the current set exactly: a concurrent
        # edit fails (412) instead of being overwritten.
        if old is not None:
            changes.delete_record_set(old.raw)
        if new is not None:
            wire = [to_presentation(new.type, v) for v in new.values]
            changes.add_record_set(managed.resource_record_set(new.name + ".", new.type, new.ttl, wire))
        with _translated(zone=zone, project=self._project):
            changes.create()


def _reasons(exc):
    return {e.get("reason") for e in (getattr(exc, "errors", None) or []) if isinstance(e, dict)}


class _translated:
    def __init__(self, *, zone=None, project=None):
        self.zone, self.project = zone, project

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None:
            return False
        if isinstance(exc, google.auth.exceptions.RefreshError):
            raise DnsProviderAuthFailed(f"Google refused the service-account key: {exc}") from exc
        if isinstance(exc, (google.auth.exceptions.TransportError, requests.RequestException)):
            raise DnsProviderUnavailable(f"Google Cloud DNS could not be reached: {exc}") from exc
        if not isinstance(exc, google_errors.GoogleAPICallError):
            return False
        message = exc.message
        if isinstance(exc, google_errors.TooManyRequests) or _reasons(exc) & _RATE_REASONS:
            raise DnsProviderRateLimited(f"Google Cloud DNS is rate limiting requests: {message}") from exc
        if isinstance(exc, (google_errors.Unauthorized, google_errors.Forbidden)):
            raise DnsProviderAuthFailed(
                f"Google Cloud DNS refused the service account on project {self.project}: {message}"
            ) from exc
        if isinstance(exc, google_errors.NotFound):
            if self.zone is not None:
                raise DnsZoneNotFound(f"Google Cloud DNS has no managed zone {self.zone.id} in project {self.project}.") from exc
            raise DnsProviderAuthFailed(f"Google Cloud project {self.project} was not found: {message}") from exc
        if isinstance(exc, (google_errors.Conflict, google_errors.PreconditionFailed)):
            raise DnsRecordConflict(f"Google Cloud DNS refused the change: {message}") from exc
        if isinstance(exc, google_errors.ServerError):
            raise DnsProviderUnavailable(f"Google Cloud DNS failed: {message}") from exc
        raise DnsProviderRequestRejected(f"Google Cloud DNS rejected the request: {message}") from exc
