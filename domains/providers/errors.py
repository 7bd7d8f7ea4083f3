"""What a DNS provider's failure means to our callers: the envelope codes of `dispatch_site.errors`.

Each client translates its SDK's exceptions into these, so services and views never see
provider-specific exception types."""
from dispatch_site.errors import Conflict, DispatchError, NotFound, RateLimited, TemporaryFailure


class DnsProviderAuthFailed(DispatchError):
    status = 400
    code = "DNS_PROVIDER_AUTH_FAILED"
    default_message = "The DNS provider rejected these credentials."


class DnsProviderRateLimited(RateLimited):
    code = "DNS_PROVIDER_RATE_LIMITED"
    default_message = "The DNS provider is rate limiting requests; try again shortly."


class DnsZoneNotFound(NotFound):
    code = "DNS_ZONE_NOT_FOUND"
    default_message = "The DNS zone was not found at the provider (or these credentials cannot see it)."


class DnsRecordConflict(Conflict):
    code = "DNS_RECORD_CONFLICT"
    default_message = "The DNS provider refused the record because it conflicts with an existing record."


class DnsProviderUnavailable(TemporaryFailure):
    code = "DNS_PROVIDER_UNAVAILABLE"
    default_message = "The DNS provider could not be reached or failed; try again."


class DnsProviderRequestRejected(DispatchError):
    """The provider refused a request for a reason that is none of the above."""

    status = 502
    code = "DNS_PROVIDER_ERROR"
    default_message = "The DNS provider rejected the request."
