"""Cloudflare through its official SDK (`cloudflare`, API v4) with an API token.

The token needs Zone:Read (list zones) and DNS:Edit on the zones it should manage."""
import cloudflare

from .base import DEFAULT_TTL, DnsProviderClient, Record, Zone, mx_parts, normalize_name, normalize_value, txt_quote, txt_unquote
from .errors import (
    DnsProviderAuthFailed,
    DnsProviderRateLimited,
    DnsProviderRequestRejected,
    DnsProviderUnavailable,
    DnsRecordConflict,
    DnsZoneNotFound,
)

# Cloudflare error codes for a malformed, unknown or insufficient token (sent with 400 or 403).
_AUTH_CODES = {1000, 6003, 6111, 9106, 9109, 10000}
# Cloudflare error codes (in the 400 body) meaning "a record there already conflicts".
_CONFLICT_CODES = {81053, 81054, 81055, 81056, 81057, 81058}
# "Could not route to /zones/<id>..." / "Invalid zone identifier": the zone id is unknown.
_ZONE_NOT_FOUND_CODES = {7000, 7003}
_PAGE_SIZE = 100


def make_http_client():
    """The httpx client the SDK uses; None means the SDK's default. Tests replace this."""
    return None


class CloudflareClient(DnsProviderClient):
    provider = "cloudflare"

    def __init__(self, *, token, timeout=20.0, max_retries=2):
        self._api = cloudflare.Cloudflare(
            api_token=token, http_client=make_http_client(), timeout=timeout, max_retries=max_retries
        )

    def verify(self):
        # Listing zones proves the token is live and has Zone:Read, which everything else needs
        # (user- and account-owned tokens alike; /user/tokens/verify only knows user tokens).
        with _translated():
            self._api.zones.list(per_page=5)

    def list_zones(self):
        with _translated():
            return [Zone(id=z.id, name=normalize_name(z.name)) for z in self._api.zones.list(per_page=50)]

    def list_records(self, zone, name, rtype):
        name = normalize_name(name)
        with _translated(zone):
            found = self._api.dns.records.list(zone_id=zone.id, name={"exact": name}, type=rtype, per_page=_PAGE_SIZE)
            return [_record(r) for r in found if normalize_name(r.name) == name and r.type == rtype]

    def create_record(self, zone, name, rtype, value, ttl=DEFAULT_TTL):
        with _translated(zone):
            self._api.dns.records.create(zone_id=zone.id, name=normalize_name(name), type=rtype, ttl=ttl, **_content(rtype, value))

    def update_record(self, zone, record, value):
        # PATCH keeps what we do not manage (comment, tags) as the user set it.
        with _translated(zone):
            self._api.dns.records.edit(
                record.id, zone_id=zone.id, name=record.name, type=record.type, ttl=record.ttl, **_content(record.type, value)
            )

    def delete_record(self, zone, record):
        with _translated(zone):
            self._api.dns.records.delete(record.id, zone_id=zone.id)


def _content(rtype, value):
    if rtype == "TXT":
        return {"content": txt_quote(value)}
    if rtype == "MX":
        preference, host = mx_parts(value)
        return {"content": host, "priority": preference}
    return {"content": normalize_value(rtype, value)}


def _record(raw):
    if raw.type == "TXT":
        value = txt_unquote(raw.content)
    elif raw.type == "MX":
        value = normalize_value("MX", f"{int(raw.priority or 0)} {raw.content}")
    else:
        value = normalize_value(raw.type, raw.content)
    return Record(name=normalize_name(raw.name), type=raw.type, value=value, ttl=int(raw.ttl or DEFAULT_TTL), id=raw.id)


def _retry_after(response, default=60):
    try:
        return max(1, int(float(response.headers.get("retry-after", default))))
    except ValueError:
        return default


def _messages(exc):
    return "; ".join(f"{e.message} ({e.code})" for e in (getattr(exc, "errors", None) or [])) or str(exc)


def _codes(exc):
    return {e.code for e in (getattr(exc, "errors", None) or [])}


class _translated:
    """Turn the SDK's exceptions into ours (a context manager so every call maps the same way)."""

    def __init__(self, zone=None):
        self.zone = zone

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or not isinstance(exc, cloudflare.CloudflareError):
            return False
        detail = _messages(exc)
        if isinstance(exc, cloudflare.APIConnectionError):
            raise DnsProviderUnavailable(f"Cloudflare could not be reached: {exc}") from exc
        if isinstance(exc, cloudflare.RateLimitError):
            raise DnsProviderRateLimited(
                f"Cloudflare is rate limiting this token: {detail}", retry_after=_retry_after(exc.response)
            ) from exc
        if isinstance(exc, (cloudflare.AuthenticationError, cloudflare.PermissionDeniedError)) or _codes(exc) & _AUTH_CODES:
            where = f" on zone {self.zone.name}" if self.zone else ""
            raise DnsProviderAuthFailed(
                f"Cloudflare rejected the API token{where} ({detail}). It must be a valid API token with "
                "Zone:Read and DNS:Edit permissions."
            ) from exc
        if self.zone is not None and (isinstance(exc, cloudflare.NotFoundError) or _codes(exc) & _ZONE_NOT_FOUND_CODES):
            raise DnsZoneNotFound(f"Cloudflare has no zone {self.zone.id} ({self.zone.name}) for this token: {detail}") from exc
        if isinstance(exc, cloudflare.ConflictError) or _codes(exc) & _CONFLICT_CODES:
            raise DnsRecordConflict(f"Cloudflare refused the record: {detail}") from exc
        if isinstance(exc, cloudflare.InternalServerError):
            raise DnsProviderUnavailable(f"Cloudflare failed: {detail}") from exc
        raise DnsProviderRequestRejected(f"Cloudflare rejected the request: {detail}") from exc
