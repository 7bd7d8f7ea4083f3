"""DNS lookups for Dispatch: one resolver factory, used for domain verification and MX lookups.

DISPATCH_DNS_NAMESERVERS (host:port list) replaces the system resolver when set; tests point it
at a loopback server. DISPATCH_DNS_TIMEOUT bounds a whole lookup, retries included.
"""
import dns.nameserver
import dns.resolver
from django.conf import settings

# One server that never answers must not use the whole lifetime: try again (or the next server).
_PER_TRY_TIMEOUT = 2.0


def make_resolver():
    """A dnspython Resolver configured from settings (no cache: answers must be current)."""
    nameservers = settings.DISPATCH_DNS_NAMESERVERS
    if nameservers:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port) for host, port in nameservers]
    else:
        resolver = dns.resolver.Resolver()
    lifetime = float(settings.DISPATCH_DNS_TIMEOUT)
    resolver.lifetime = lifetime
    resolver.timeout = min(_PER_TRY_TIMEOUT, lifetime)
    resolver.cache = None
    # EDNS with the DNS-flag-day buffer size: a DKIM key plus SPF fit in one UDP answer.
    resolver.use_edns(0, 0, 1232)
    return resolver
