"""VERP return paths and the feedback-loop address.

Every delivery uses its own envelope sender so that a bounce identifies the recipient row without
parsing anything else:

    b-<recipient id, base 36>-<tag>@<return-path domain>      e.g. b-2n9c-k3x7q2m4ha@bounces.example.com

`tag` is the first 10 base-32 characters (50 bits) of HMAC-SHA256(SECRET_KEY-derived key, "verp:<id>"),
so nobody can forge a return path that bounces somebody else's recipient. Everything is lower case:
mail systems are allowed to (and some do) change the case of a local part. `decode` returns the
recipient id or None (not ours, malformed, forged); the caller still checks that the domain is the
return-path domain of that recipient's tenant.

Complaint (feedback-loop) reports are registered with mailbox providers to `fbl@<return-path domain>`.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
from functools import lru_cache

PREFIX = "b"
FEEDBACK_LOCAL_PART = "fbl"
TAG_LENGTH = 10

_VERP_RE = re.compile(rf"^{PREFIX}-([0-9a-z]{{1,13}})-([a-z2-7]{{{TAG_LENGTH}}})$")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _key(secret: str | None) -> bytes:
    if secret is None:
        from django.conf import settings

        secret = settings.SECRET_KEY
    return _derived_key(secret)


@lru_cache(maxsize=8)
def _derived_key(secret: str) -> bytes:
    return hashlib.sha256(b"dispatch-verp:" + secret.encode()).digest()


def _tag(recipient_id: int, secret: str | None) -> str:
    digest = hmac.new(_key(secret), f"verp:{recipient_id}".encode(), hashlib.sha256).digest()
    # The first 10 base-32 characters depend on the first 7 bytes only; 10 bytes encode unpadded.
    return base64.b32encode(digest[:10]).decode().lower()[:TAG_LENGTH]


def _base36(number: int) -> str:
    if number == 0:
        return "0"
    out = []
    while number:
        number, digit = divmod(number, 36)
        out.append(_DIGITS[digit])
    return "".join(reversed(out))


def _split(address: str) -> tuple[str, str]:
    address = (address or "").strip().strip("<>").strip()
    local, _, domain = address.rpartition("@")
    return local.lower(), domain.lower().rstrip(".")


def encode(recipient_id: int, return_path_domain: str, *, secret: str | None = None) -> str:
    """The envelope sender (MAIL FROM) for one recipient row."""
    if not isinstance(recipient_id, int) or isinstance(recipient_id, bool) or recipient_id < 0:
        raise ValueError("recipient_id must be a non-negative integer")
    return f"{PREFIX}-{_base36(recipient_id)}-{_tag(recipient_id, secret)}@{return_path_domain.lower()}"


def decode(address: str, *, secret: str | None = None) -> int | None:
    """The recipient id a VERP address carries, or None when it is not a valid, untampered one."""
    local, domain = _split(address)
    match = _VERP_RE.match(local)
    if not match or not domain:
        return None
    recipient_id = int(match.group(1), 36)
    if not hmac.compare_digest(match.group(2), _tag(recipient_id, secret)):
        return None
    return recipient_id


def return_path_domain_of(address: str) -> str:
    """The domain part of a return-path / feedback address, lower case."""
    return _split(address)[1]


def feedback_address(return_path_domain: str) -> str:
    """Where ARF complaint reports for this domain are sent (register it with feedback loops)."""
    return f"{FEEDBACK_LOCAL_PART}@{return_path_domain.lower()}"


def is_feedback_address(address: str) -> bool:
    local, domain = _split(address)
    return local == FEEDBACK_LOCAL_PART and bool(domain)
