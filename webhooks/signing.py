"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

A secret is `whsec_` + base64 of the key bytes; the signature header is
`v1,<base64 HMAC-SHA256 over "{webhook-id}.{webhook-timestamp}.{body}">`.
A tenant may also bring a plain secret (the API spec's example is "your-webhook-secret"): its UTF-8
bytes are the key, which `standardwebhooks.Webhook(secret.encode())` verifies."""
import base64
import binascii
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
GENERATED_KEY_BYTES = 32
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64
MIN_PLAIN_SECRET_CHARS = 16
MAX_PLAIN_SECRET_CHARS = 256


class InvalidSecret(ValueError):
    pass


def generate_secret():
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(GENERATED_KEY_BYTES)).decode("ascii")


def secret_key(secret):
    """The HMAC key of a secret; raises InvalidSecret when it is malformed or too weak."""
    if not secret.startswith(SECRET_PREFIX):
        if not MIN_PLAIN_SECRET_CHARS <= len(secret) <= MAX_PLAIN_SECRET_CHARS:
            raise InvalidSecret(
                f"must be {SECRET_PREFIX!r} + base64, or a plain secret of "
                f"{MIN_PLAIN_SECRET_CHARS} to {MAX_PLAIN_SECRET_CHARS} characters"
            )
        return secret.encode("utf-8")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSecret(f"the part after {SECRET_PREFIX!r} must be base64") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise InvalidSecret(f"the key must be {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes (base64-decoded)")
    return key


def signature(*, secret, webhook_id, timestamp, body):
    """The webhook-signature header value for `body` (bytes) sent at `timestamp` (int seconds)."""
    signed = f"{webhook_id}.{int(timestamp)}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(*, secret, webhook_id, timestamp, body):
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": signature(secret=secret, webhook_id=webhook_id, timestamp=timestamp, body=body),
    }
