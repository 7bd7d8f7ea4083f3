"""Where does mail for a domain go? MX lookup (RFC 5321 §5.1) with the null MX of RFC 7505,
the implicit MX (A/AAAA of the domain itself), the SSRF guard and an optional smarthost.

`route(domain)` returns the hosts to try, best preference first (equal preferences shuffled),
or raises RouteError (permanent: bounce/fail now; temporary: defer and retry). Answers are
cached in-process for their TTL (bounded LRU): a worker asks once per domain, not per message.
"""
import random
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import dns.exception
import dns.rdatatype
import dns.resolver
from django.conf import settings

from dispatch_site.netsafety import is_public_address, parse_ip_literal

_CACHE_SIZE = 10_000
_MAX_TTL = 3600
_NEGATIVE_TTL = 60


@dataclass(frozen=True)
class Target:
    host: str  # MX host name (logs, TLS server name)
    address: str  # IP address (or the smarthost name) to connect to
    port: int
    preference: int = 0


class RouteError(Exception):
    """No usable route. `code`/`enhanced` are the reply we report, as if from a server."""

    def __init__(self, text, *, permanent, code=None, enhanced=""):
        super().__init__(text)
        self.text = text
        self.permanent = permanent
        self.code = code if code is not None else (550 if permanent else 451)
        self.enhanced = enhanced or ("5.4.4" if permanent else "4.4.3")


class _TTLCache:
    def __init__(self, size):
        self._size = size
        self._items = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            expires, value = item
            if expires < time.monotonic():
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return value

    def put(self, key, value, ttl):
        with self._lock:
            self._items[key] = (time.monotonic() + ttl, value)
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self):
        with self._lock:
            self._items.clear()


_cache = _TTLCache(_CACHE_SIZE)


def clear_cache():
    _cache.clear()


def parse_smarthost(value):
    """'host:port', '[v6]:port' or 'host' (port from DISPATCH_OUTBOUND_SMTP_PORT)."""
    value = value.strip()
    port = settings.DISPATCH_OUTBOUND_SMTP_PORT
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
    elif value.count(":") == 1:
        host, port_text = value.split(":")
        port = int(port_text)
    else:
        host = value
    return host, port


def route(domain):
    """Targets for `domain`, in the order to try them."""
    if settings.DISPATCH_SMARTHOST:
        host, port = parse_smarthost(settings.DISPATCH_SMARTHOST)
        return [Target(host=host, address=host, port=port)]
    domain = domain.rstrip(".").lower()
    if not domain or domain.startswith("[") or parse_ip_literal(domain) is not None:
        raise RouteError(f"{domain!r} is an address literal; only domain names are routed", permanent=True, code=550, enhanced="5.1.2")
    key = (domain, tuple(settings.DISPATCH_DNS_NAMESERVERS), settings.DISPATCH_OUTBOUND_ALLOW_PRIVATE)
    cached = _cache.get(key)
    if cached is None:
        try:
            cached, ttl = _lookup(domain)
        except RouteError as error:
            if not error.permanent:
                raise  # temporary failures are not cached: the next attempt asks again
            cached, ttl = error, _NEGATIVE_TTL
        _cache.put(key, cached, ttl)
    if isinstance(cached, RouteError):
        raise cached
    return _ordered(cached)


def _ordered(targets):
    """Best preference first; hosts of equal preference in random order (RFC 5321 §5.1),
    each host's addresses together in the order they were found."""
    groups = {}
    for target in targets:
        groups.setdefault((target.preference, target.host), []).append(target)
    keys = list(groups)
    random.shuffle(keys)
    keys.sort(key=lambda key: key[0])
    return [target for key in keys for target in groups[key]]


def _resolver():
    from domains.dns import make_resolver

    return make_resolver()


def _lookup(domain):
    """([Target, ...], ttl) or RouteError."""
    resolver = _resolver()
    try:
        answer = resolver.resolve(domain, "MX", raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        raise RouteError(f"domain {domain} does not exist", permanent=True, code=550, enhanced="5.1.2") from None
    except (dns.exception.Timeout, dns.resolver.NoNameservers, dns.resolver.NoResolverConfiguration) as exc:
        raise RouteError(f"MX lookup for {domain} failed: {exc.__class__.__name__}", permanent=False) from None
    except dns.exception.DNSException as exc:
        raise RouteError(f"MX lookup for {domain} failed: {exc}", permanent=False) from None

    ttls = [_MAX_TTL]
    if answer.rrset:
        ttls.append(answer.rrset.ttl)
        exchanges = sorted((record.preference, record.exchange.to_text(omit_final_dot=True).lower()) for record in answer.rrset)
        real = [(preference, name) for preference, name in exchanges if name not in ("", ".")]
        if not real:
            # RFC 7505: a domain that accepts no mail.
            raise RouteError(f"{domain} accepts no mail (null MX)", permanent=True, code=556, enhanced="5.1.10")
    else:
        real = [(0, domain)]  # RFC 5321 §5.1: no MX -> the domain itself is the implicit MX

    targets, refused, temporary = [], [], []
    for preference, host in real:
        try:
            addresses, ttl = _addresses(resolver, host)
        except RouteError as error:
            temporary.append(error)
            continue
        ttls.append(ttl)
        for address in addresses:
            if settings.DISPATCH_OUTBOUND_ALLOW_PRIVATE or is_public_address(address):
                targets.append(Target(host=host, address=address, port=settings.DISPATCH_OUTBOUND_SMTP_PORT, preference=preference))
            else:
                refused.append(address)
    if targets:
        return targets, max(1, min(ttls))
    if temporary:
        raise temporary[0]
    if refused:
        raise RouteError(
            f"mail servers of {domain} resolve only to non-public addresses ({', '.join(refused[:3])})",
            permanent=True,
            code=550,
            enhanced="5.4.4",
        )
    if answer.rrset:
        raise RouteError(f"the mail servers of {domain} have no address", permanent=True, code=550, enhanced="5.4.4")
    raise RouteError(f"{domain} has no MX and no address", permanent=True, code=550, enhanced="5.1.2")


def _addresses(resolver, host):
    """IPv4 first, then IPv6 (an IPv6 route is the one more often missing)."""
    literal = parse_ip_literal(host)
    if literal is not None:
        # Not a valid MX target (RFC 5321 wants a name) but seen in the wild; still SSRF-checked.
        return [str(literal)], _MAX_TTL
    addresses, ttls, failures = [], [], 0
    for rdtype in ("A", "AAAA"):
        try:
            answer = resolver.resolve(host, rdtype, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return [], _NEGATIVE_TTL
        except dns.exception.DNSException:
            failures += 1
            continue
        if answer.rrset:
            ttls.append(answer.rrset.ttl)
            addresses.extend(record.address for record in answer.rrset)
    if not addresses and failures:
        raise RouteError(f"address lookup for {host} failed", permanent=False)
    return addresses, min(ttls) if ttls else _NEGATIVE_TTL
