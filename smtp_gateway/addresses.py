"""Envelope address parsing and the rules that keep the gateway from becoming a relay oracle.

Refused (553 5.1.3): source routes (`<@relay:user@host>`), `%` and `!` routing, quoted or
otherwise unusual local parts, IP-literal and single-label domains, over-length paths and
invalid UTF-8. Non-ASCII addresses need the SMTPUTF8 parameter on MAIL (553 5.6.7)."""
import re
from dataclasses import dataclass

import idna

MAX_PATH = 254  # RFC 5321 4.5.3.1.3: 256 octets including the angle brackets
MAX_LOCAL_PART = 64
MAX_DOMAIN = 253

# RFC 5322 atext plus '.', with '%' and '!' (legacy routing) deliberately left out.
_LOCAL_ASCII = re.compile(r"[A-Za-z0-9#$&'*+/=?^_`{|}~.-]+\Z")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
_PATH = re.compile(r"\s*<([^<>]*)>(.*)\Z", re.S)


class AddressRefused(Exception):
    def __init__(self, reply):
        self.reply = reply
        super().__init__(reply)


@dataclass(frozen=True)
class Path:
    address: str  # "" for the null path <>
    params: dict


def parse_path(arg):
    """`<addr> KEY=VALUE ...` (angle brackets optional, as many clients omit them).
    Raises AddressRefused with the reply for a malformed path or parameter list."""
    match = _PATH.match(arg)
    if match:
        address, rest = match.group(1).strip(), match.group(2)
    else:
        address, _, rest = arg.strip().partition(" ")
    if address.startswith("@"):
        raise AddressRefused("553 5.1.3 Source routes are not accepted")
    params = {}
    for token in rest.split():
        key, eq, value = token.partition("=")
        if not key.isascii() or not key.isalnum() or (eq and not value):
            raise AddressRefused("501 5.5.4 Malformed parameters")
        params[key.upper()] = value if eq else True
    return Path(address=address, params=params)


def check_address(address, *, smtputf8):
    """Return the address with its domain lower-cased, or raise AddressRefused."""
    if any("\udc80" <= ch <= "\udcff" for ch in address):
        raise AddressRefused("553 5.1.3 Address is not valid UTF-8")
    if len(address.encode("utf-8")) > MAX_PATH:
        raise AddressRefused("553 5.1.3 Address too long")
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise AddressRefused("553 5.1.3 Address must be local-part@domain")
    if not address.isascii() and not smtputf8:
        raise AddressRefused("553 5.6.7 Non-ASCII address requires the SMTPUTF8 parameter")
    if "%" in local or "!" in local:
        raise AddressRefused("553 5.1.3 Address routing with % or ! is not accepted")
    if len(local.encode("utf-8")) > MAX_LOCAL_PART:
        raise AddressRefused("553 5.1.3 Local part too long")
    if not _local_part_ok(local):
        raise AddressRefused("553 5.1.3 Malformed local part")
    if domain.startswith("["):
        raise AddressRefused("553 5.1.3 Address literals are not accepted")
    if _ascii_domain(domain) is None:
        raise AddressRefused("553 5.1.3 Malformed domain")
    return f"{local}@{domain.lower()}"


def _local_part_ok(local):
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return False
    if local.isascii():
        return bool(_LOCAL_ASCII.match(local))
    # UTF-8 local parts (RFC 6531): no controls, spaces or specials beyond atext.
    return all(ch.isprintable() and not ch.isspace() and ch not in '"(),:;<>@[\\]%!' for ch in local)


def _ascii_domain(domain):
    """The IDNA (punycode) form of a syntactically usable host name, or None."""
    if domain.endswith("."):
        return None
    try:
        ascii_domain = domain.lower() if domain.isascii() else idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return None
    labels = ascii_domain.split(".")
    if len(ascii_domain) > MAX_DOMAIN or len(labels) < 2:
        return None
    if not all(_LABEL.match(label) for label in labels):
        return None
    if labels[-1].isdigit():  # 127.0.0.1 written without brackets
        return None
    return ascii_domain
