"""Domain name normalisation: what a tenant may register as a sending domain.

Accepted: a public-looking DNS name of two or more labels, IDN allowed (stored as lower-case
punycode). Refused: IP literals, single labels, `localhost` and other names that can never be
in public DNS, bad or over-long labels, e-mail addresses and URLs.
"""
import ipaddress
import re

import idna

from dispatch_site.errors import ValidationFailed

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")

# Special-use names that are never delegated in the public DNS (RFC 6761, 6762, 7686, 6303/8375,
# 9476, ICANN's .internal). ".test" and ".example" are accepted: they are handy in development
# and CI and can never be verified in public DNS anyway.
NON_PUBLIC_SUFFIXES = ("localhost", "local", "invalid", "onion", "arpa", "internal", "alt")


def _invalid(message):
    return ValidationFailed(message, details={"domain": [message]})


def normalize_domain(raw):
    """`raw` -> the lower-case ASCII (punycode) domain, or ValidationFailed."""
    if not isinstance(raw, str):
        raise _invalid("domain must be a string.")
    name = raw.strip()
    if not name:
        raise _invalid("domain is required.")
    if "@" in name:
        raise _invalid("Give a domain name (example.com), not an e-mail address.")
    if "://" in name or "/" in name:
        raise _invalid("Give a domain name (example.com), not a URL.")
    if name.startswith("[") or _is_ip(name):
        raise _invalid("IP addresses cannot be sending domains; use a domain name.")
    if name.endswith("."):
        name = name[:-1]
    if not name or ".." in name or name.startswith("."):
        raise _invalid("domain has an empty label.")
    ascii_name = name.lower() if name.isascii() else _idna_encode(name)
    labels = ascii_name.split(".")
    for label in labels:
        if len(label) > 63:
            raise _invalid(f"domain label {label[:20]}... is longer than 63 characters.")
        if not _LABEL.match(label):
            raise _invalid(f"domain label {label!r} may contain only letters, digits and inner hyphens.")
    if len(ascii_name) > 253:
        raise _invalid("domain is longer than 253 characters.")
    if "xn--" in ascii_name:
        _idna_decode_strict(ascii_name)  # punycode given directly must be valid IDNA too
    if len(labels) < 2:
        raise _invalid("domain needs at least two labels (example.com); single-label names are not public.")
    if labels[-1].isdigit():
        raise _invalid("domain has a numeric top-level label; IP addresses cannot be sending domains.")
    for suffix in NON_PUBLIC_SUFFIXES:
        if ascii_name == suffix or ascii_name.endswith("." + suffix):
            raise _invalid(f"{ascii_name} is not a public domain (.{suffix} names are not in public DNS).")
    return ascii_name


def _idna_encode(name):
    try:
        return idna.encode(name, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError) as exc:
        raise _invalid(f"domain is not a valid internationalised domain name: {exc}") from None


def _idna_decode_strict(ascii_name):
    try:
        idna.decode(ascii_name)
    except (idna.IDNAError, UnicodeError) as exc:
        raise _invalid(f"domain is not a valid internationalised domain name: {exc}") from None


def _is_ip(name):
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def to_unicode(ascii_name):
    try:
        return idna.decode(ascii_name)
    except (idna.IDNAError, UnicodeError):
        return ascii_name


def domain_of_address(address):
    """The normalised domain of an e-mail address, or None if it has none or it is invalid."""
    _, at, domain = (address or "").rpartition("@")
    if not at:
        return None
    domain = domain.strip().rstrip(">").strip()
    try:
        return normalize_domain(domain)
    except ValidationFailed:
        return None
