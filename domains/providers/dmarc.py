"""DMARC (RFC 7489) record editing for automatic DNS setup: pure functions over logical TXT values."""
import re

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from dispatch_site.errors import ValidationFailed


def is_dmarc(value):
    return re.match(r"\s*v\s*=\s*DMARC1\s*(;|$)", value, re.IGNORECASE) is not None


def rua_uri(email):
    """`mailto:` URI for aggregate reports; refuses what would break the tag list (`,` `;` `!`)."""
    email = (email or "").strip()
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationFailed(
            "dmarc_rua_email must be an email address.", details={"dmarc_rua_email": ["Enter a valid email address."]}
        ) from None
    if re.search(r"[,;!\s]", email):
        raise ValidationFailed(
            "dmarc_rua_email cannot contain ',', ';' or '!' (they are separators in a DMARC record).",
            details={"dmarc_rua_email": ["Characters , ; ! are not allowed."]},
        )
    return f"mailto:{email}"


def fresh_dmarc(rua_email=None, policy="none"):
    """A monitoring-only record (p=none): reports arrive, nothing is rejected yet."""
    record = f"v=DMARC1; p={policy}"
    if rua_email:
        record += f"; rua={rua_uri(rua_email)}"
    return record


def _tags(value):
    tags = []
    for part in value.split(";"):
        if part.strip():
            key, _, tag_value = part.partition("=")
            tags.append((key.strip(), tag_value.strip()))
    return tags


def dmarc_with_rua(value, rua_email):
    """`value` with `mailto:<rua_email>` among its aggregate-report addresses.

    The policy and every other tag stay as they are; existing report addresses stay too (a
    DMARC monitoring service the owner already uses keeps receiving reports). Returns `value`
    itself when the address is already there."""
    uri = rua_uri(rua_email)
    tags = _tags(value)
    for index, (key, tag_value) in enumerate(tags):
        if key.lower() == "rua":
            uris = [u.strip() for u in tag_value.split(",") if u.strip()]
            if any(u.split("!", 1)[0].lower() == uri.lower() for u in uris):
                return value
            tags[index] = (key, ",".join([*uris, uri]))
            break
    else:
        # Tag order is free after v= and p= (RFC 7489 §6.4); keep ours right after the policy.
        policy_at = next((i for i, (k, _) in enumerate(tags) if k.lower() == "p"), 0)
        tags.insert(policy_at + 1, ("rua", uri))
    return "; ".join(f"{key}={tag_value}" for key, tag_value in tags)
