"""Strict e-mail address handling for everything we send to or from.

Deliberate choices (documented in docs/sending.md):
- local part: dot-atom only (RFC 5322 atext minus `%` and `!`, which are relay-routing
  syntax); quoted local parts are refused;
- domain: a DNS host name with at least two labels; IP literals (`[127.0.0.1]`) are refused
  (they would make the delivery worker connect to arbitrary hosts), so are source routes
  (`@relay:user@host`);
- internationalised domains (IDN) are accepted and converted to their ASCII (punycode) form,
  which is what goes into the envelope, the headers and the database;
- non-ASCII local parts (SMTPUTF8 mailboxes) are refused: we cannot promise that every hop
  supports SMTPUTF8, and a message that silently cannot be delivered is worse than a clear 400;
- lengths per RFC 5321: local part <= 64, domain <= 253 (labels <= 63), address <= 254.
"""
import re
from email.headerregistry import Address
from functools import lru_cache

from email import policy as email_policy

from dispatch_site.errors import ValidationFailed

MAX_ADDRESS = 254
MAX_LOCAL = 64
MAX_DOMAIN = 253

_ATEXT = r"[A-Za-z0-9#$&'*+\-/=?^_`{|}~]+"
_LOCAL_RE = re.compile(rf"^{_ATEXT}(?:\.{_ATEXT})*$")
_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class InvalidAddress(ValidationFailed):
    code = "INVALID_ADDRESS"
    default_message = "Invalid email address."
    smtp_reply = (553, "5.1.3")


def has_control_chars(value: str) -> bool:
    return bool(_CONTROL_RE.search(value))


def ascii_domain(domain: str) -> str | None:
    """Lower-case ASCII form of a host name (IDN -> punycode), or None if it is not one."""
    if not domain or len(domain) > MAX_DOMAIN:
        return None
    if not domain.isascii():
        try:
            import idna

            domain = idna.encode(domain, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError, ValueError):
            return None
    domain = domain.lower()
    labels = domain.split(".")
    if len(labels) < 2 or len(domain) > MAX_DOMAIN:
        return None
    if not all(_LABEL_RE.match(label) for label in labels):
        return None
    if labels[-1].isdigit():  # 10.0.0.1 written without brackets
        return None
    return domain


def normalize_address(value, *, field="email") -> str:
    """Validate an addr-spec and return it with the domain in lower-case ASCII.
    Raises InvalidAddress (400 / 553 5.1.3)."""
    if not isinstance(value, str):
        raise InvalidAddress(f"{field}: must be a string", details={field: ["must be a string"]})
    address = value.strip()
    if has_control_chars(address):
        raise InvalidAddress(f"{field}: control characters are not allowed", details={field: ["contains control characters"]})

    def bad(reason):
        return InvalidAddress(f"{field}: {reason} ({address[:100]!r})", details={field: [reason]})

    if address.count("@") != 1:
        raise bad("not a valid email address")
    local, domain = address.split("@")
    if not local or not domain:
        raise bad("not a valid email address")
    if domain.startswith("[") or domain.endswith("]"):
        raise bad("IP-literal domains are not accepted")
    if not local.isascii():
        raise bad("non-ASCII (SMTPUTF8) local parts are not supported")
    if len(local) > MAX_LOCAL:
        raise bad("local part is longer than 64 characters")
    if not _LOCAL_RE.match(local):
        raise bad("local part has characters that are not allowed")
    domain_ascii = ascii_domain(domain)
    if domain_ascii is None:
        raise bad("domain is not a valid host name")
    result = f"{local}@{domain_ascii}"
    if len(result) > MAX_ADDRESS:
        raise bad("address is longer than 254 characters")
    return result


def parse_mailbox(value, *, field="from") -> Address:
    """One mailbox, `addr` or `Display Name <addr>`, as an email.headerregistry.Address whose
    addr_spec is normalised by normalize_address. Results are cached: a bulk send repeats the
    same sender, and the header parser is the slow part."""
    if not isinstance(value, str):
        raise InvalidAddress(f"{field}: required", details={field: ["required"]})
    return _parse_mailbox(value, field)


@lru_cache(maxsize=4096)
def _parse_mailbox(value, field) -> Address:
    if not isinstance(value, str) or not value.strip():
        raise InvalidAddress(f"{field}: required", details={field: ["required"]})
    if has_control_chars(value):
        raise InvalidAddress(f"{field}: control characters are not allowed", details={field: ["contains control characters"]})
    if len(value) > 998:
        raise InvalidAddress(f"{field}: too long", details={field: ["too long"]})
    if "<" not in value and "," not in value and '"' not in value:
        # A normalised address is a dot-atom: its parts make the same Address as parsing it
        # again would (addr_spec=...), at a twentieth of the cost — once per recipient of a /send.
        local, _, domain = normalize_address(value, field=field).rpartition("@")
        return Address(username=local, domain=domain)
    try:
        header = email_policy.default.header_factory("To", value)
    except ValueError:  # an encoded word that decodes to CR or LF (Address refuses those)
        raise _control_chars_in_display_name(field) from None
    mailboxes = [mailbox for group in header.groups for mailbox in group.addresses]
    if len(mailboxes) != 1 or header.defects or header.groups[0].display_name is not None:
        raise InvalidAddress(f"{field}: expected one address", details={field: ["expected exactly one address"]})
    mailbox = mailboxes[0]
    if mailbox.addr_spec.startswith("@") or not mailbox.username:
        raise InvalidAddress(f"{field}: not a valid email address", details={field: ["not a valid email address"]})
    addr = normalize_address(f"{mailbox.username}@{mailbox.domain}", field=field)
    local, _, domain = addr.rpartition("@")
    return Address(display_name=check_display_name(mailbox.display_name or "", field=field), username=local, domain=domain)


def check_display_name(name: str, *, field) -> str:
    """A display name as decoded (encoded words included: `=?utf-8?q?a=0D=0A?=` decodes to CR LF)
    must have no control characters. Raises InvalidAddress."""
    if has_control_chars(name):
        raise _control_chars_in_display_name(field)
    return name


def _control_chars_in_display_name(field):
    return InvalidAddress(
        f"{field}: control characters are not allowed in the display name",
        details={field: ["display name contains control characters"]},
    )


# The common, unambiguous forms of an address-list header (`addr@dom`, `Name <addr@dom>`,
# `"Quoted, Name" <addr@dom>`, comma lists) as email.policy.default reads them: words of RFC 5322
# atext joined by one space whatever whitespace separated them, quoted text as it is. Anything
# else (comments, groups, encoded words, escapes, obsolete syntax, non-ASCII, empty list
# elements) is left to the full parser.
_HEADER_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_HEADER_ADDR = rf"{_HEADER_ATEXT}(?:\.{_HEADER_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
_HEADER_MAILBOX = re.compile(
    rf'[ \t]*(?:(?P<bare>{_HEADER_ADDR})|(?:(?P<words>{_HEADER_ATEXT}(?:[ \t]+{_HEADER_ATEXT})*)|"(?P<quoted>[ !#-\[\]-~]*)")?'
    rf"[ \t]*<(?P<angle>{_HEADER_ADDR})>)[ \t]*(?:,|\Z)"
)
_WSP_RUN = re.compile(r"[ \t]+")


def simple_address_list(value: str):
    """[(display_name, addr_spec)] exactly as email.policy.default gives them for an unfolded
    address-list header value in one of the simple forms, or None when the value is not one of
    those (the caller then parses it in full). Perf: the full parser was a quarter of the SMTP
    submission path."""
    if not value.isascii() or "=?" in value:
        return None
    found, position, end = [], 0, len(value)
    while position < end:
        match = _HEADER_MAILBOX.match(value, position)
        if match is None:
            return None
        if match["bare"]:
            found.append(("", match["bare"]))
        else:
            words = match["words"]
            found.append((_WSP_RUN.sub(" ", words) if words else match["quoted"] or "", match["angle"]))
        position = match.end()
        if value[position - 1 : position] == "," and not value[position:].strip(" \t"):
            return None  # a trailing comma: an empty list element (obsolete syntax)
    return found or None


def domain_of(address: str) -> str:
    return address.rpartition("@")[2]
