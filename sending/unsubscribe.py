"""Per-recipient unsubscribe tokens for the RFC 8058 one-click List-Unsubscribe link.

A token carries everything the unsubscribe needs without the recipient row, because log
retention (sending/retention.py) deletes messages and their recipients long before the mail
leaves the reader's inbox: the tenant id (16 bytes), the recipient row id (8 bytes, big-endian;
it links the `unsubscribed` event to the message while the row exists) and the recipient address
(UTF-8). That payload is encrypted and authenticated with the key ring of
dispatch_site/crypto.py (AES-256-GCM, associated data: this module's purpose string), then
urlsafe-base64-encoded without padding. Nobody can read the address in the URL, forge or alter a
token, or pass a ciphertext made for another purpose (a DKIM key, a message body) as a token.
Tokens do not expire, and they survive key rotation for as long as their key stays in
DISPATCH_ENCRYPTION_KEYS.

Tokens made before that (`<base62 recipient id>:<signature>`, Django signing over SECRET_KEY with
a purpose salt) are still in inboxes and are still read: they carry only the recipient id, so
they work only while the row exists.

The one-click endpoint is `{DISPATCH_PUBLIC_URL}/u/<token>` (sending/unsubscribe_views.py).
"""
import base64
import re
import struct
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core import signing

from dispatch_site import crypto

_SALT = "dispatch.sending.unsubscribe"  # of the old signed-id tokens
_PURPOSE = b"dispatch.sending.unsubscribe.v2"
_HEAD = struct.Struct(">16sQ")  # tenant UUID, recipient id; the address follows
# A 254-character address of 4-byte UTF-8 characters, with the tenant, id and crypto overhead,
# stays under this; anything longer is not ours and is not worth decrypting.
MAX_TOKEN_CHARS = 1500
_URLSAFE = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class UnsubscribeClaim:
    """What a valid token says. tenant_id and email are None for a token of the old signed-id
    form: only the recipient row can tell them."""

    recipient_id: int
    tenant_id: uuid.UUID | None = None
    email: str | None = None


def make_token(recipient) -> str:
    payload = _HEAD.pack(recipient.tenant_id.bytes, recipient.pk) + recipient.email.encode("utf-8")
    return _encoded(crypto.encrypt(payload, _PURPOSE))


def _encoded(blob):
    return base64.urlsafe_b64encode(blob).rstrip(b"=").decode("ascii")


def read_token(token: str) -> UnsubscribeClaim | None:
    """What the token says, or None if it is not a valid token (either form)."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        return None
    if ":" in token:
        return _read_signed_id(token)
    if not _URLSAFE.fullmatch(token):
        return None
    try:
        blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        if _encoded(blob) != token:  # unused low bits set: one token, one spelling
            return None
        payload = crypto.decrypt(blob, _PURPOSE)
        tenant_bytes, recipient_id = _HEAD.unpack_from(payload)
        email = payload[_HEAD.size:].decode("utf-8")
    except (crypto.DecryptionError, ValueError, struct.error):  # ValueError: bad base64, bad UTF-8
        return None
    return UnsubscribeClaim(recipient_id=recipient_id, tenant_id=uuid.UUID(bytes=tenant_bytes), email=email)


def _read_signed_id(token):
    try:
        return UnsubscribeClaim(recipient_id=signing.b62_decode(signing.Signer(salt=_SALT).unsign(token)))
    except (signing.BadSignature, ValueError, IndexError):
        return None


def unsubscribe_url(recipient) -> str:
    return f"{settings.DISPATCH_PUBLIC_URL}/u/{make_token(recipient)}"
