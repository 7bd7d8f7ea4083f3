"""DKIM signing (RFC 6376, rsa-sha256, relaxed/relaxed) that is fast enough for the
delivery path.

dkimpy does the parts that must match every verifier byte for byte (header parsing,
canonicalisation, header selection and the b=-stripped signature header hash); the RSA
operation is done by `cryptography` (OpenSSL), about ten times faster than dkimpy's
pure-Python RSA. Verification stays with dkimpy (tests) and the receiving side.
"""
import base64
import hashlib
import re
import time
from functools import lru_cache

import dkim as dkimpy
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from dkim.canonicalization import CanonicalizationPolicy, correct_empty_body, strip_trailing_lines

_POLICY = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")

# Signed when present (RFC 6376 §5.4.1 list plus the RFC 8058 pair).
SIGNED_HEADERS = (
    b"from", b"sender", b"reply-to", b"subject", b"date", b"message-id", b"to", b"cc",
    b"mime-version", b"content-type", b"content-transfer-encoding", b"content-id",
    b"content-description", b"in-reply-to", b"references", b"list-id", b"list-help",
    b"list-unsubscribe", b"list-unsubscribe-post", b"list-subscribe", b"list-post",
    b"list-owner", b"list-archive", b"feedback-id",
)
# Signed once more than they occur, so nobody can add another instance downstream
# (a second From, Subject or List-Unsubscribe would otherwise pass verification).
OVERSIGNED_HEADERS = frozenset(
    {b"from", b"subject", b"to", b"cc", b"reply-to", b"date", b"message-id", b"list-unsubscribe",
     b"list-unsubscribe-post", b"content-type", b"mime-version"}
)


class DKIMSigningError(Exception):
    pass


@lru_cache(maxsize=512)
def _private_key(pem):
    """Loaded keys, cached by their PEM (parsing costs more than signing). The PEM usually is
    the same bytes object every time (domains.services caches the decrypted key), whose hash
    Python computes once."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise DKIMSigningError(f"unusable DKIM private key: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise DKIMSigningError("DKIM private key is not RSA")
    return key


def load_private_key(pem: bytes):
    return _private_key(bytes(pem))


def normalize_line_endings(raw: bytes) -> bytes:
    """CRLF everywhere: a bare CR or LF would be rewritten by some relay after signing and
    break the body hash, so the bytes we sign are the bytes we send."""
    crlf = raw.count(b"\r\n")
    if raw.count(b"\n") == crlf and raw.count(b"\r") == crlf:
        return raw  # already CRLF throughout (the usual case): counting is cheaper than copying
    return raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def split_message(raw: bytes):
    """dkimpy.rfc822_parse(raw) for a CRLF message, without splitting the body into lines
    (only the header block is parsed; the body is the rest as it is)."""
    end = raw.find(b"\r\n\r\n")
    if end == -1 or raw.startswith(b"\r\n"):
        return dkimpy.rfc822_parse(raw)
    headers, _ = dkimpy.rfc822_parse(raw[: end + 2])
    return headers, raw[end + 4 :]


def canonical_body(body: bytes) -> bytes:
    """The relaxed body canonicalisation, as dkimpy computes it. A body without tabs, runs of
    spaces or spaces before a line end (the usual case: our encoders never write them) is
    only stripped of trailing empty lines; the two regular-expression passes are skipped."""
    if b"\t" in body or b"  " in body or b" \r\n" in body:
        return _POLICY.canonicalize_body(body)
    return correct_empty_body(strip_trailing_lines(body))


def _include_headers(names):
    present = [name for name in names if name in SIGNED_HEADERS]
    if b"from" not in present:
        raise DKIMSigningError("the message has no From header")
    extra = []
    for name in present:
        if name in OVERSIGNED_HEADERS and name not in extra:
            extra.append(name)
    return present + extra


_FOLD = re.compile(b"\r?\n")  # dkim.canonicalization's patterns, compiled once
_WSP = re.compile(b"[\t ]+")


def _relaxed_value(value):
    """Relaxed canonicalisation of one header value, as dkimpy's: unfold, compress runs of
    WSP, strip. A one-line value without tabs or double spaces (nearly all) needs only the strip."""
    if value.endswith(b"\r\n") and value.count(b"\n") == 1 and b"\t" not in value and b"  " not in value:
        return value.strip() + b"\r\n"
    return _WSP.sub(b" ", _FOLD.sub(b"", value)).strip() + b"\r\n"


def hash_signed_headers(hasher, headers, names, include, sigheader):
    """dkimpy.hash_headers(hasher, relaxed, relaxed.canonicalize_headers(headers), include,
    sigheader, None) for the headers of rfc822_parse (`names`: theirs, lower case): only the
    selected headers are canonicalised, with the patterns compiled once."""
    lastindex = {}
    for name in include:  # dkimpy.select_headers: the last unused instance of each name
        i = lastindex.get(name, len(names))
        while i > 0:
            i -= 1
            if names[i] == name:
                hasher.update(name + b":" + _relaxed_value(headers[i][1]))
                break
        lastindex[name] = i
    name, value = sigheader
    hasher.update(name.lower().rstrip() + b":" + _relaxed_value(dkimpy.RE_BTAG.sub(b"\\1", value)).rstrip())


_FIELD_NAME = re.compile(rb"[\x21-\x7e]+")  # rfc822_parse's, less the colon it stops at


def parsed_fields(fields):
    """rfc822_parse's header list for header fields as sending.mime.split_head gives them (each
    with its continuation lines, CRLF-terminated), or None when one is not a plain
    `name:value` field (then rfc822_parse should decide: it refuses some, skips "From " lines)."""
    headers = []
    for field in fields:
        name, colon, value = field.partition(b":")
        if not colon or not _FIELD_NAME.fullmatch(name):
            return None
        headers.append([name, value])
    return headers


def dkim_sign_fields(fields, rest, *, domain: str, selector: str, private_key_pem: bytes, timestamp: int | None = None) -> bytes:
    """dkim_sign(b"".join(fields) + rest) for a CRLF-only message the caller has already split
    with sending.mime.split_head (`rest` starts at the blank line): its header block is not
    parsed a second time."""
    raw = b"".join(fields) + rest
    headers = parsed_fields(fields) if fields and rest.startswith(b"\r\n") else None
    if headers is None:
        return dkim_sign(raw, domain=domain, selector=selector, private_key_pem=private_key_pem, timestamp=timestamp)
    return _sign(raw, headers, rest[2:], domain, selector, private_key_pem, timestamp)


def dkim_sign(raw: bytes, *, domain: str, selector: str, private_key_pem: bytes, timestamp: int | None = None) -> bytes:
    """Return `raw` (line endings normalised to CRLF) with a DKIM-Signature header prepended."""
    raw = normalize_line_endings(raw)
    headers, body = split_message(raw)
    return _sign(raw, headers, body, domain, selector, private_key_pem, timestamp)


def _sign(raw, headers, body, domain, selector, private_key_pem, timestamp):
    """`raw` signed; `headers` and `body` are split_message(raw)."""
    key = load_private_key(private_key_pem)
    # rfc822_parse's names have no whitespace: lower() is the relaxed canonical name
    names = [name.lower() for name, _ in headers]
    include = _include_headers(names)

    body_hash = base64.b64encode(hashlib.sha256(canonical_body(body)).digest())
    stamp = str(int(timestamp if timestamp is not None else time.time()))
    # The text before "b=" is hashed exactly as it is sent (a verifier strips only the b=
    # value and its folding), so it is folded once, here, between tags.
    head = (
        f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain}; s={selector};\r\n"
        f"\tt={stamp}; bh={body_hash.decode('ascii')};\r\n"
        f"\th={_fold_list(tuple(include))};\r\n"
        "\tb="
    ).encode("ascii")
    name, _, value = head.partition(b":")
    hasher = hashlib.sha256()
    hash_signed_headers(hasher, headers, names, include, (name, value))
    signature = base64.b64encode(key.sign(hasher.digest(), padding.PKCS1v15(), Prehashed(hashes.SHA256())))
    folded = b"\r\n\t".join(signature[i : i + 72] for i in range(0, len(signature), 72))
    return head + folded + b"\r\n" + raw


@lru_cache(maxsize=256)  # a handful of header sets, folded once each
def _fold_list(names):
    lines, line = [], []
    for item in names:
        if line and sum(len(n) + 1 for n in line) + len(item) > 60:
            lines.append(":".join(n.decode("ascii") for n in line))
            line = []
        line.append(item)
    lines.append(":".join(n.decode("ascii") for n in line))
    return ":\r\n\t".join(lines)


def public_key_record(private_key_pem: bytes) -> str:
    """The TXT record value ("v=DKIM1; k=rsa; p=...") that verifies signatures of this key."""
    public = load_private_key(private_key_pem).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode("ascii")
