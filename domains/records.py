"""The DNS records a sending domain needs, and checking them against live DNS.

Only the ownership TXT record is required to send; the others are reported one by one so the
portal can show each green or red (see docs/domains.md for why each one matters).
"""
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import dns.exception
import dns.resolver
from django.conf import settings

from .dns import make_resolver

VERIFIED, MISSING, MISMATCH, ERROR, UNCHECKED = "verified", "missing", "mismatch", "error", "unchecked"

_SPF = re.compile(r"^v=spf1(\s|$)", re.IGNORECASE)
_DMARC = re.compile(r"^v=DMARC1\s*(;|$)", re.IGNORECASE)


@dataclass(frozen=True)
class ExpectedRecord:
    kind: str  # verification | dkim | spf | dmarc | return_path | return_path_spf
    record_type: str
    host: str
    value: str
    purpose: str
    required: bool

    def as_dict(self):
        return {
            "kind": self.kind, "record_type": self.record_type, "host": self.host, "value": self.value,
            "purpose": self.purpose, "required": self.required,
        }


@dataclass
class RecordCheck:
    record: ExpectedRecord
    status: str
    found: list = field(default_factory=list)
    message: str = ""

    @property
    def kind(self):
        return self.record.kind

    def as_dict(self):
        return {**self.record.as_dict(), "status": self.status, "found": self.found, "message": self.message}

    def stored(self):
        return {"status": self.status, "found": self.found, "message": self.message}


def spf_value():
    return f"v=spf1 include:{settings.DISPATCH_HOSTNAME} ~all"


def expected_records(domain):
    hostname = settings.DISPATCH_HOSTNAME
    return [
        ExpectedRecord("verification", "TXT", domain.verification_host, domain.verification_value,
                       "Domain verification", True),
        ExpectedRecord("dkim", "TXT", domain.dkim_host, f"v=DKIM1; k=rsa; p={domain.dkim_public_key}",
                       "DKIM signing", False),
        ExpectedRecord("spf", "TXT", domain.name, spf_value(), "SPF - authorize sending servers", False),
        ExpectedRecord("dmarc", "TXT", f"_dmarc.{domain.name}", "v=DMARC1; p=none;", "DMARC policy", False),
        ExpectedRecord("return_path", "MX", domain.return_path_domain, f"10 {hostname}",
                       "Bounce handling return path", False),
        ExpectedRecord("return_path_spf", "TXT", domain.return_path_domain, spf_value(),
                       "SPF for the return path (envelope sender) domain", False),
    ]


# --- lookups -----------------------------------------------------------------------------------
@dataclass
class Lookup:
    outcome: str  # ok | nxdomain | nodata | servfail | timeout | error
    values: list = field(default_factory=list)
    detail: str = ""


def _lookup(host, record_type):
    resolver = make_resolver()
    try:
        answer = resolver.resolve(host + ".", record_type)
    except dns.resolver.NXDOMAIN:
        return Lookup("nxdomain")
    except dns.resolver.NoAnswer:
        return Lookup("nodata")
    except dns.resolver.NoNameservers as exc:
        return Lookup("servfail", detail=str(exc))
    except dns.exception.Timeout:
        return Lookup("timeout")
    except (dns.exception.DNSException, OSError) as exc:
        return Lookup("error", detail=str(exc) or exc.__class__.__name__)
    if record_type == "TXT":
        values = [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
    else:  # MX
        values = [f"{r.preference} {r.exchange.to_text(omit_final_dot=True).lower()}" for r in answer]
    return Lookup("ok", sorted(values))


def _lookup_failure(record, lookup):
    """The RecordCheck for a lookup that found nothing usable, or None when it found values."""
    host, rtype = record.host, record.record_type
    if lookup.outcome == "nxdomain":
        return RecordCheck(record, MISSING, [], f"{host} does not exist in DNS (NXDOMAIN): add the {rtype} record.")
    if lookup.outcome == "nodata":
        return RecordCheck(record, MISSING, [], f"{host} has no {rtype} record: add it.")
    if lookup.outcome == "servfail":
        return RecordCheck(record, ERROR, [], f"The DNS servers for {host} failed to answer (SERVFAIL or refused). "
                                              "Check the domain's DNS hosting, then verify again.")
    if lookup.outcome == "timeout":
        return RecordCheck(record, ERROR, [], f"The DNS lookup for {host} timed out after "
                                              f"{settings.DISPATCH_DNS_TIMEOUT:g}s. Verify again later.")
    if lookup.outcome == "error":
        return RecordCheck(record, ERROR, [], f"The DNS lookup for {host} failed: {lookup.detail}")
    return None


# --- evaluation per record kind ----------------------------------------------------------------
def _clean(value):
    # People paste the quotes from DNS zone syntax into provider forms: "\"abc\"" means abc.
    return value.strip().strip('"').strip()


def _check_verification(record, found):
    if any(_clean(v).lower() == record.value.lower() for v in found):
        return RecordCheck(record, VERIFIED, found, "Ownership record found.")
    return RecordCheck(record, MISMATCH, found,
                       f"{len(found)} TXT record(s) at {record.host}, none is {record.value}.")


def _dkim_public_key(value):
    for part in _clean(value).split(";"):
        tag, _, tag_value = part.partition("=")
        if tag.strip().lower() == "p":
            return "".join(tag_value.split())
    return None


def _check_dkim(record, found, expected_key):
    keys = [_dkim_public_key(v) for v in found]
    if expected_key in keys:
        return RecordCheck(record, VERIFIED, found, "DKIM public key found.")
    if any(k is not None for k in keys):
        return RecordCheck(record, MISMATCH, found,
                           f"The DKIM record at {record.host} has a different public key: publish the value shown.")
    return RecordCheck(record, MISMATCH, found, f"No DKIM key (p=...) in the TXT records at {record.host}.")


def _check_spf(record, found):
    spf = [v for v in found if _SPF.match(_clean(v))]
    include = f"include:{settings.DISPATCH_HOSTNAME}".lower()
    if not spf:
        return RecordCheck(record, MISSING, found, f"No SPF record (v=spf1 ...) at {record.host}: add {record.value}")
    if len(spf) > 1:
        return RecordCheck(record, MISMATCH, found,
                           f"{len(spf)} SPF records at {record.host}; receivers treat several as an error "
                           f"(RFC 7208 4.5). Merge them into one that contains {include}.")
    terms = [t.lower().lstrip("+") for t in _clean(spf[0]).split()]
    if include in terms:
        return RecordCheck(record, VERIFIED, found, "SPF record includes this server.")
    return RecordCheck(record, MISMATCH, found,
                       f"The SPF record at {record.host} does not contain {include}: add it before the final 'all'.")


def _check_dmarc(record, found):
    dmarc = [v for v in found if _DMARC.match(_clean(v))]
    if not dmarc:
        return RecordCheck(record, MISSING, found, f"No DMARC record (v=DMARC1; ...) at {record.host}.")
    if len(dmarc) > 1:
        return RecordCheck(record, MISMATCH, found,
                           f"{len(dmarc)} DMARC records at {record.host}; receivers ignore them all. Keep one.")
    return RecordCheck(record, VERIFIED, found, "DMARC record found.")


def _check_return_path(record, found):
    target = settings.DISPATCH_HOSTNAME.lower().rstrip(".")
    if any(v.split(" ", 1)[-1] == target for v in found):
        return RecordCheck(record, VERIFIED, found, "Return-path MX record found.")
    return RecordCheck(record, MISMATCH, found, f"The MX record at {record.host} must point to {target}.")


def check_records(domain):
    """Look up every expected record (concurrently: one slow name must not add up) and
    return a RecordCheck per record, in expected_records() order. Never raises for DNS trouble."""
    records = expected_records(domain)
    queries = sorted({(r.host, r.record_type) for r in records})
    with ThreadPoolExecutor(max_workers=len(queries)) as pool:
        lookups = dict(zip(queries, pool.map(lambda q: _lookup(*q), queries)))
    checks = []
    for record in records:
        lookup = lookups[(record.host, record.record_type)]
        failure = _lookup_failure(record, lookup)
        if failure is not None:
            checks.append(failure)
        elif record.kind == "verification":
            checks.append(_check_verification(record, lookup.values))
        elif record.kind == "dkim":
            checks.append(_check_dkim(record, lookup.values, domain.dkim_public_key))
        elif record.kind in ("spf", "return_path_spf"):
            checks.append(_check_spf(record, lookup.values))
        elif record.kind == "dmarc":
            checks.append(_check_dmarc(record, lookup.values))
        else:
            checks.append(_check_return_path(record, lookup.values))
    return checks
