"""Reads for sending domains, including the one question `sending` asks."""
from email.utils import parseaddr

from django.utils import timezone

from dispatch_site import hot_reads
from dispatch_site.errors import NotFound

from .models import Domain
from .validation import domain_of_address


def domains_of_tenant(tenant):
    return Domain.objects.for_tenant(tenant).order_by("created_at")


def domain_get(*, tenant, domain_id):
    domain = Domain.objects.for_tenant(tenant).filter(pk=domain_id).first()
    if domain is None:
        raise NotFound("Domain not found.", code="DOMAIN_NOT_FOUND")
    return domain


def sending_domain_for(*, tenant, address):
    """The domain that lets `tenant` send from `address` now, or None.

    Exact match only: mail from news.example.com needs news.example.com itself to be verified;
    a verified example.com does not cover its subdomains. The domain must be verified, or in its
    warning grace period (see Domain.is_usable)."""
    domain_name = sending_domain_name(address)
    if domain_name is None:
        return None
    return usable_sending_domain(hot_reads.domain_of_tenant_by_name(tenant, domain_name))


def sending_domain_name(address):
    """The name of the sending domain that `address` needs, or None if it has no valid domain."""
    return domain_of_address(parseaddr(address or "")[1] or address)


def usable_sending_domain(domain):
    """`domain` (read by name) if mail may be sent from it now, else None."""
    if domain is None or not domain.is_usable(timezone.now()):
        return None
    return domain
