"""DNS providers a user connects (Cloudflare, Route 53, Google Cloud DNS) and the automatic DNS
setup of a domain through one of them.

Provider API calls never run inside a database transaction: connecting checks the credentials
first and only then inserts the row; the setup reads and writes the zone, then verifies."""
import json

from django.conf import settings

from dispatch_site import crypto
from dispatch_site.errors import NotFound, ValidationFailed

from . import records, selectors, services
from .models import DnsProvider
from .providers import CREDENTIAL_FIELDS, OPTIONAL_FIELDS, client_for
from .providers.errors import DnsZoneNotFound
from .providers.setup import apply_setup, plan_setup


def _clean_credentials(provider, submitted):
    """The credential fields of `provider` from the request, as strings; 400 naming what is missing."""
    if provider not in CREDENTIAL_FIELDS:
        raise ValidationFailed(
            f"provider must be one of {', '.join(CREDENTIAL_FIELDS)}.", details={"provider": ["Unknown provider."]}
        )
    credentials, missing = {}, []
    for name in CREDENTIAL_FIELDS[provider]:
        value = submitted.get(name)
        if name == "service_account_json" and isinstance(value, dict):
            value = json.dumps(value)  # the key file pasted as an object rather than a string
        value = value.strip() if isinstance(value, str) else ""
        if value:
            credentials[name] = value
        elif name not in OPTIONAL_FIELDS:
            missing.append(name)
    if provider == "gcp" and "project_id" in missing:
        # A service-account key names its project; the field is only needed to use another one.
        try:
            credentials["project_id"] = json.loads(credentials.get("service_account_json", "{}"))["project_id"]
            missing.remove("project_id")
        except (ValueError, KeyError, TypeError):
            pass
    if missing:
        raise ValidationFailed(
            f"A {provider} provider needs: {', '.join(missing)}.",
            details={name: ["This field is required."] for name in missing},
        )
    return credentials


def dns_provider_connect(*, owner, provider, label, credentials):
    """Check the credentials against the provider, then store them encrypted. Returns the row."""
    credentials = _clean_credentials(provider, credentials)
    client_for(provider, credentials).verify()  # network: before (and outside) the transaction
    dns_provider = DnsProvider(owner=owner, provider=provider, label=label.strip() or provider)
    dns_provider.credentials_encrypted = crypto.encrypt_text(
        json.dumps(credentials), dns_provider.credentials_associated_data
    )
    dns_provider.save(force_insert=True)
    return dns_provider


def dns_providers_of(owner):
    return DnsProvider.objects.filter(owner=owner).order_by("created_at")


def dns_provider_get(*, owner, provider_id):
    """The provider if `owner` connected it; anyone else's answers 404 like a missing one."""
    dns_provider = DnsProvider.objects.filter(owner=owner, pk=provider_id).first()
    if dns_provider is None:
        raise NotFound("DNS provider not found.", code="DNS_PROVIDER_NOT_FOUND")
    return dns_provider


def dns_provider_delete(*, owner, provider_id):
    deleted, _ = DnsProvider.objects.filter(owner=owner, pk=provider_id).delete()
    if not deleted:
        raise NotFound("DNS provider not found.", code="DNS_PROVIDER_NOT_FOUND")


def dns_provider_client(dns_provider):
    credentials = json.loads(
        crypto.decrypt_text(bytes(dns_provider.credentials_encrypted), dns_provider.credentials_associated_data)
    )
    return client_for(dns_provider.provider, credentials)


def dns_provider_zones(*, owner, provider_id):
    return dns_provider_client(dns_provider_get(owner=owner, provider_id=provider_id)).list_zones()


def domain_dns_setup(
    *, tenant, domain_id, owner, provider_id, zone_id, zone_name=None, spf_action="append", dmarc_action="create",
    dmarc_rua_email=None,
):
    """Publish the domain's records through the owner's DNS provider, then verify the domain.

    Returns (records: [per-record result], domain, checks) where each result has a status of
    created | updated | unchanged | skipped."""
    domain = selectors.domain_get(tenant=tenant, domain_id=domain_id)
    client = dns_provider_client(dns_provider_get(owner=owner, provider_id=provider_id))
    zone = _zone(client, zone_id, zone_name)
    steps = plan_setup(
        client, zone, records.expected_records(domain), include_host=settings.DISPATCH_HOSTNAME,
        spf_action=spf_action, dmarc_action=dmarc_action, dmarc_rua_email=dmarc_rua_email,
    )
    results = apply_setup(client, zone, steps)
    domain, checks = services.domain_verify(tenant=tenant, domain_id=domain.id)
    return results, domain, checks


def _zone(client, zone_id, zone_name):
    """The zone by id as the provider names it; a stated zone_name must agree (no writing into
    the wrong zone because of a copy-paste slip)."""
    zone = next((z for z in client.list_zones() if z.id == zone_id), None)
    if zone is None:
        raise DnsZoneNotFound(f"The provider has no zone with id {zone_id} for these credentials.")
    if zone_name and zone_name.strip().rstrip(".").lower() != zone.name:
        raise ValidationFailed(
            f"Zone {zone_id} is {zone.name}, not {zone_name}.", code="DNS_ZONE_MISMATCH",
            details={"zone_name": [f"Zone {zone_id} is {zone.name}."]},
        )
    return zone
