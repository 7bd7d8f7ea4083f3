"""DNS provider clients (Cloudflare, Route 53, Google Cloud DNS) behind one interface.

`client_for(provider, credentials)` builds the client for a stored or submitted credential dict;
see base.DnsProviderClient for what every client can do."""
from .base import DnsProviderClient, Record, Zone

PROVIDERS = ("cloudflare", "route53", "gcp")

# The credential fields each provider takes (all strings); `region` is optional.
CREDENTIAL_FIELDS = {
    "cloudflare": ("token",),
    "route53": ("access_key", "secret_key", "region"),
    "gcp": ("service_account_json", "project_id"),
}
OPTIONAL_FIELDS = {"region"}


def client_for(provider, credentials) -> DnsProviderClient:
    if provider == "cloudflare":
        from .cloudflare import CloudflareClient

        return CloudflareClient(token=credentials["token"])
    if provider == "route53":
        from .route53 import Route53Client

        return Route53Client(
            access_key=credentials["access_key"],
            secret_key=credentials["secret_key"],
            region=credentials.get("region") or "us-east-1",
        )
    if provider == "gcp":
        from .gcp import GoogleCloudDnsClient

        return GoogleCloudDnsClient(
            service_account_json=credentials["service_account_json"], project_id=credentials["project_id"]
        )
    raise ValueError(f"unknown DNS provider {provider!r}")


__all__ = ["CREDENTIAL_FIELDS", "OPTIONAL_FIELDS", "PROVIDERS", "DnsProviderClient", "Record", "Zone", "client_for"]
