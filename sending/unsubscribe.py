"""Per-recipient unsubscribe tokens for the RFC 8058 one-click List-Unsubscribe link.

A token is the recipient row id signed with Django's signing (HMAC-SHA256 over SECRET_KEY,
with a purpose salt): anyone can read the id inside, nobody can forge or alter one, and a
token made for another purpose does not validate here. Tokens do not expire: an
unsubscribe link has to keep working for as long as the mail sits in someone's inbox.
The one-click endpoint (`POST {DISPATCH_PUBLIC_URL}/u/<token>`) lands with the
bounces/suppressions issue.
"""
from django.conf import settings
from django.core import signing

_SALT = "dispatch.sending.unsubscribe"


def make_token(recipient) -> str:
    return signing.Signer(salt=_SALT).sign(signing.b62_encode(recipient.pk))


def read_token(token: str) -> int | None:
    """The recipient id the token was made for, or None if it is not a valid token."""
    if not isinstance(token, str) or len(token) > 200:
        return None
    try:
        return signing.b62_decode(signing.Signer(salt=_SALT).unsign(token))
    except (signing.BadSignature, ValueError, IndexError):
        return None


def unsubscribe_url(recipient) -> str:
    return f"{settings.DISPATCH_PUBLIC_URL}/u/{make_token(recipient)}"
