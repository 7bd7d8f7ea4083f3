"""DKIM signing (dkimpy canonicalisation + cryptography RSA) verified by dkimpy and by OpenDKIM,
and the per-recipient finishing done at delivery."""
import base64
import email
import os
import re
import uuid
from email import policy

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sending.dkim import DKIMSigningError, dkim_sign, public_key_record
from sending.mime import finalize_for_recipient
from sending.models import Message
from sending.unsubscribe import UnsubscribeClaim, make_token, read_token

from . import opendkim
from .conftest import message_payload
from .test_send_api import stored_mime

MESSAGE = (
    b"From: Acme <news@example.com>\r\nTo: bob@example.org\r\nSubject:  Hello   there \r\n"
    b"Date: Wed, 25 Nov 2026 08:00:00 +0000\r\nMessage-ID: <x1@mail.dispatch.test>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nHello  world \r\nsecond line\r\n\r\n\r\n"
)


@pytest.fixture(scope="module")
def key_pem():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def dns_for(selector, domain, record):
    def dnsfunc(name, timeout=5):
        return record.encode() if name == f"{selector}._domainkey.{domain}.".encode() else None

    return dnsfunc


def test_dkimpy_verifies_our_signature(key_pem):
    signed = dkim_sign(MESSAGE, domain="example.com", selector="s1", private_key_pem=key_pem)
    assert signed.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=s1;")
    assert signed.endswith(MESSAGE)
    assert dkim.verify(signed, dnsfunc=dns_for("s1", "example.com", public_key_record(key_pem)))


def test_tampering_breaks_the_signature(key_pem):
    signed = dkim_sign(MESSAGE, domain="example.com", selector="s1", private_key_pem=key_pem)
    dnsfunc = dns_for("s1", "example.com", public_key_record(key_pem))
    assert not dkim.verify(signed.replace(b"Hello  world", b"Hello  World"), dnsfunc=dnsfunc)
    assert not dkim.verify(signed.replace(b"Subject:  Hello", b"Subject:  Jello"), dnsfunc=dnsfunc)
    # An added second From (or Subject) is caught: those headers are over-signed.
    injected = signed.replace(b"From: Acme", b"From: evil@example.net\r\nFrom: Acme")
    assert not dkim.verify(injected, dnsfunc=dnsfunc)


def test_whitespace_changes_in_transit_still_verify(key_pem):
    """relaxed/relaxed: refolded headers and trailing whitespace do not break the signature."""
    signed = dkim_sign(MESSAGE, domain="example.com", selector="s1", private_key_pem=key_pem)
    mangled = signed.replace(b"Subject:  Hello   there \r\n", b"Subject: Hello\r\n   there\r\n").replace(
        b"Hello  world \r\n", b"Hello world\r\n"
    )
    assert dkim.verify(mangled, dnsfunc=dns_for("s1", "example.com", public_key_record(key_pem)))


def test_another_key_does_not_verify(key_pem):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    signed = dkim_sign(MESSAGE, domain="example.com", selector="s1", private_key_pem=key_pem)
    assert not dkim.verify(signed, dnsfunc=dns_for("s1", "example.com", public_key_record(other)))


def test_bare_line_feeds_are_normalised_before_signing(key_pem):
    signed = dkim_sign(MESSAGE.replace(b"\r\n", b"\n"), domain="example.com", selector="s1", private_key_pem=key_pem)
    assert b"\n" not in signed.replace(b"\r\n", b"")
    assert dkim.verify(signed, dnsfunc=dns_for("s1", "example.com", public_key_record(key_pem)))


def test_signing_needs_a_from_header_and_an_rsa_key(key_pem):
    with pytest.raises(DKIMSigningError):
        dkim_sign(b"To: a@example.org\r\n\r\nx\r\n", domain="example.com", selector="s1", private_key_pem=key_pem)
    with pytest.raises(DKIMSigningError):
        dkim_sign(MESSAGE, domain="example.com", selector="s1", private_key_pem=b"not a key")


@pytest.mark.skipif(not opendkim.available(), reason="needs opendkim-testmsg (scripts/ensure-services.sh) and permission to unshare -mn")
def test_opendkim_verifies_our_signature(key_pem):
    signed = dkim_sign(MESSAGE, domain="example.com", selector="s1", private_key_pem=key_pem)
    ok, details = opendkim.opendkim_verify(signed, record_name="s1._domainkey.example.com.", txt=public_key_record(key_pem))
    assert ok, details
    ok, details = opendkim.opendkim_verify(
        signed.replace(b"second line", b"Second line"), record_name="s1._domainkey.example.com.", txt=public_key_record(key_pem)
    )
    assert not ok and "signature" in str(details).lower()


# --- finalize_for_recipient on a message that went through /send --------------------------------
@pytest.mark.django_db
def test_each_recipient_copy_gets_list_unsubscribe_and_a_valid_signature(api, send_url, verified_domain, settings):
    from domains.services import domain_dkim_private_key

    response = api.post(send_url, message_payload(to=["a@example.org", "b@example.org"], html_body='<img src="cid:x">'), format="json")
    message = Message.objects.get(pk=response.json()["data"]["id"])
    raw, _ = stored_mime(message)
    assert b"DKIM-Signature" not in raw and b"List-Unsubscribe" not in raw  # added per recipient at delivery
    record = f"v=DKIM1; k=rsa; p={verified_domain.dkim_public_key}"
    assert record == public_key_record(domain_dkim_private_key(verified_domain))
    copies = {}
    for recipient in message.recipients.order_by("id"):
        copy = finalize_for_recipient(raw, message=message, recipient=recipient, domain=verified_domain)
        parsed = email.message_from_bytes(copy, policy=policy.default)
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        url = parsed["List-Unsubscribe"].strip("<>")
        assert url.startswith(f"{settings.DISPATCH_PUBLIC_URL}/u/")
        assert read_token(url.rsplit("/", 1)[1]) == UnsubscribeClaim(recipient.id, message.tenant_id, recipient.email)
        assert dkim.verify(copy, dnsfunc=dns_for(verified_domain.dkim_selector, "example.com", record))
        signature = dkim.util.parse_tag_value(parsed["DKIM-Signature"].encode().replace(b"\r\n", b""))
        assert signature[b"d"] == b"example.com" and signature[b"s"] == verified_domain.dkim_selector.encode()
        assert b"list-unsubscribe" in signature[b"h"]
        copies[recipient.email] = copy
    assert copies["a@example.org"] != copies["b@example.org"]


@pytest.mark.django_db
def test_finalize_strips_control_headers_and_replaces_a_clients_list_unsubscribe(verified_domain, tenant, settings):
    from sending.models import Recipient

    message = Message(tenant=tenant, id="00000000-0000-0000-0000-000000000001")
    recipient = Recipient(id=7, tenant=tenant, email="a@example.org")
    raw = (
        b"From: news@example.com\r\nTo: a@example.org\r\nX-Dispatch-Tags: a,b\r\nX-Dispatch-Metadata: {\r\n \"k\": 1}\r\n"
        b"List-Unsubscribe: <https://client.example/u>\r\nBcc: hidden@example.org\r\nSubject: s\r\n\r\nbody\r\n"
    )
    copy = finalize_for_recipient(raw, message=message, recipient=recipient, domain=verified_domain)
    parsed = email.message_from_bytes(copy, policy=policy.default)
    assert parsed["X-Dispatch-Tags"] is None and parsed["X-Dispatch-Metadata"] is None and parsed["Bcc"] is None
    [unsubscribe] = parsed.get_all("List-Unsubscribe")
    base, _, token = unsubscribe.strip("<>").rpartition("/")
    assert base == f"{settings.DISPATCH_PUBLIC_URL}/u"
    assert read_token(token) == UnsubscribeClaim(7, tenant.id, "a@example.org")
    assert parsed["Subject"] == "s" and parsed.get_content().strip() == "body"


@pytest.mark.skipif(not opendkim.available(), reason="needs opendkim-testmsg and permission to unshare -mn")
@pytest.mark.django_db
def test_opendkim_verifies_a_finalized_multipart_copy(api, send_url, verified_domain):
    import base64

    response = api.post(send_url, message_payload(
        **{"from": "Støre <sender@example.com>"}, subject="Grüße " + "long subject " * 10,
        attachments=[{"filename": "a.pdf", "content_type": "application/pdf", "content": base64.b64encode(b"%PDF" * 500).decode()}],
    ), format="json")
    message = Message.objects.get(pk=response.json()["data"]["id"])
    raw, _ = stored_mime(message)
    copy = finalize_for_recipient(raw, message=message, recipient=message.recipients.get(), domain=verified_domain)
    ok, details = opendkim.opendkim_verify(
        copy, record_name=f"{verified_domain.dkim_selector}._domainkey.example.com.",
        txt=f"v=DKIM1; k=rsa; p={verified_domain.dkim_public_key}",
    )
    assert ok, details


# --- unsubscribe tokens -------------------------------------------------------------------------
TENANT_ID = uuid.UUID("5b0e4a52-8d0b-4c1e-9f55-3f2f7f4c9a10")


class _Recipient:
    def __init__(self, pk, email="ann@example.org", tenant_id=TENANT_ID):
        self.pk = self.id = pk
        self.email, self.tenant_id = email, tenant_id


def old_form_token(recipient_id):
    """A token as made before tokens carried tenant and address: such links are still in inboxes."""
    from django.core import signing

    return signing.Signer(salt="dispatch.sending.unsubscribe").sign(signing.b62_encode(recipient_id))


def test_unsubscribe_tokens_carry_tenant_recipient_id_and_address_and_are_url_safe():
    token = make_token(_Recipient(123456, email="Ünïcode.Reader@example.org"))

    assert read_token(token) == UnsubscribeClaim(recipient_id=123456, tenant_id=TENANT_ID, email="Ünïcode.Reader@example.org")
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert len(make_token(_Recipient(2**40, email="reader@example.org"))) < 110


def test_unsubscribe_tokens_do_not_show_the_address():
    address = b"reader.with.a.long.name@example.org"
    token = make_token(_Recipient(5, email=address.decode()))

    assert address not in base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    for offset in range(3):  # base64 of the address at each of the three byte alignments
        encoded = base64.urlsafe_b64encode(b"\0" * offset + address).decode()
        assert encoded[4:-4] not in token
    assert make_token(_Recipient(5, email=address.decode())) != token  # a fresh nonce each time


def test_old_form_unsubscribe_tokens_are_still_read_for_their_recipient_id():
    assert read_token(old_form_token(123456)) == UnsubscribeClaim(recipient_id=123456)


@pytest.mark.parametrize("mangle", [
    lambda token: token[:40] + ("A" if token[40] != "A" else "B") + token[41:],   # ciphertext altered
    lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),                # tag altered
    lambda token: token[:-4],                                                     # truncated
    lambda token: token + "AAAA",                                                 # extended
    lambda token: "B" + token[1:],                                                # another format version
    lambda token: token[:30] + "." + token[31:],                                  # not base64url
    lambda token: "x" * 100,
    lambda token: "",
])
def test_tampered_unsubscribe_tokens_are_refused(mangle):
    assert read_token(mangle(make_token(_Recipient(123456)))) is None


def test_tampered_old_form_unsubscribe_tokens_are_refused():
    token = old_form_token(123456)
    _, _, signature = token.partition(":")
    assert read_token(old_form_token(123457).partition(":")[0] + ":" + signature) is None
    assert read_token(token[:-2] + ("AA" if not token.endswith("AA") else "BB")) is None
    assert read_token(token.partition(":")[0]) is None
    assert read_token("x" * 5000) is None and read_token(None) is None


def test_unsubscribe_tokens_are_bound_to_their_purpose():
    from django.core import signing

    from dispatch_site import crypto

    other_purpose = signing.Signer(salt="something.else").sign(signing.b62_encode(5))
    assert read_token(other_purpose) is None
    # Same layout, encrypted with the same key ring for another purpose (e.g. a row's associated data).
    payload = TENANT_ID.bytes + (5).to_bytes(8, "big") + b"ann@example.org"
    foreign = base64.urlsafe_b64encode(crypto.encrypt(payload, f"{TENANT_ID}:5")).rstrip(b"=").decode()
    assert read_token(foreign) is None


def test_unsubscribe_tokens_survive_key_rotation_while_their_key_is_in_the_ring(settings):
    old_key, new_key = list(settings.DISPATCH_ENCRYPTION_KEYS)[0], os.urandom(32)
    token = make_token(_Recipient(77))

    settings.DISPATCH_ENCRYPTION_KEYS = [new_key, old_key]
    assert read_token(token) == UnsubscribeClaim(77, TENANT_ID, "ann@example.org")
    assert read_token(make_token(_Recipient(78))).recipient_id == 78

    settings.DISPATCH_ENCRYPTION_KEYS = [new_key]
    assert read_token(token) is None


# The fast paths of dkim_sign must give dkimpy's results byte for byte, or signatures break.
from hypothesis import given, settings as hsettings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from sending.dkim import canonical_body, normalize_line_endings, split_message  # noqa: E402

_pieces = st.sampled_from([b"a", b"Z", b" ", b"  ", b"\t", b"\r\n", b"\r", b"\n", b"=20", b".", b"\xc3\xa9", b":"])
_bodies = st.lists(_pieces, max_size=60).map(b"".join)


@hsettings(max_examples=400, deadline=None)
@given(_bodies)
def test_relaxed_body_canonicalisation_matches_dkimpy(body):
    from dkim.canonicalization import CanonicalizationPolicy

    body = normalize_line_endings(body)
    assert canonical_body(body) == CanonicalizationPolicy.from_c_value(b"relaxed/relaxed").canonicalize_body(body)


@hsettings(max_examples=300, deadline=None)
@given(_bodies)
def test_line_ending_normalisation_matches_the_replacement_chain(raw):
    assert normalize_line_endings(raw) == raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


_header_blocks = st.lists(
    st.tuples(st.sampled_from([b"From", b"To", b"Subject", b"X-A"]), _bodies.filter(lambda v: b"\r\n\r\n" not in v)),
    max_size=5,
)


@hsettings(max_examples=300, deadline=None)
@given(_header_blocks, _bodies, st.booleans())
def test_splitting_head_and_body_matches_dkimpy(fields, body, with_blank_line):
    head = b"".join(name + b": " + value.replace(b"\r\n", b"\r\n ") + b"\r\n" for name, value in fields)
    raw = normalize_line_endings(head + (b"\r\n" + body if with_blank_line else b""))
    try:
        expected = dkim.rfc822_parse(raw)
    except dkim.MessageFormatError:
        with pytest.raises(dkim.MessageFormatError):
            split_message(raw)
        return
    assert split_message(raw) == expected


def test_a_message_with_whitespace_runs_in_its_body_still_verifies(key_pem):
    raw = MESSAGE.replace(b"second line", b"second\t\tline  with   runs \t")
    signed = dkim_sign(raw, domain="example.com", selector="s1", private_key_pem=key_pem)
    record = public_key_record(key_pem)
    assert dkim.verify(signed, dnsfunc=dns_for("s1", "example.com", record))


_signed_names = st.sampled_from([b"From", b"from", b"FROM", b"To", b"Subject", b"subject", b"X-A", b"List-Unsubscribe", b"Date"])
_signed_blocks = st.lists(
    st.tuples(_signed_names, _bodies.filter(lambda v: b"\r\n\r\n" not in v)), min_size=1, max_size=8,
)


@hsettings(max_examples=400, deadline=None)
@given(_signed_blocks, _bodies)
def test_hashing_the_signed_headers_matches_dkimpy(fields, sig_value):
    """hash_signed_headers (the selected headers canonicalised, fast path for plain values)
    feeds the hash exactly what dkimpy.hash_headers over all canonicalised headers feeds it:
    repeated names (the last instance first, oversigning), any case, tabs, runs of spaces, folds."""
    import hashlib

    from dkim.canonicalization import CanonicalizationPolicy

    from sending.dkim import _include_headers, hash_signed_headers

    head = b"From: a@example.com\r\n" + b"".join(
        name + b":" + value.replace(b"\r\n", b"\r\n ") + b"\r\n" for name, value in fields
    )
    raw = normalize_line_endings(head + b"\r\nbody\r\n")
    try:
        headers, _ = split_message(raw)
    except dkim.MessageFormatError:
        return
    names = [name.lower() for name, _ in headers]
    include = _include_headers(names)
    sigheader = (b"DKIM-Signature", b" v=1; a=rsa-sha256;\r\n\t" + normalize_line_endings(sig_value) + b"; b=")
    policy = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
    expected, got = hashlib.sha256(), hashlib.sha256()
    dkim.hash_headers(expected, policy, policy.canonicalize_headers(headers), include, sigheader, None)
    hash_signed_headers(got, headers, names, include, sigheader)
    assert got.hexdigest() == expected.hexdigest()


_line_starts = st.sampled_from([b"From:", b"from :", b"From ", b"To:", b"Subject:", b"X-A:", b" ", b"\t", b"List-Unsubscribe:", b"", b"no colon"])
_raw_heads = st.lists(st.tuples(_line_starts, _bodies), min_size=1, max_size=8).map(
    lambda lines: b"".join(start + value + b"\r\n" for start, value in lines)
)


@hsettings(max_examples=300, deadline=None)
@given(_raw_heads, _bodies, st.booleans())
def test_signing_fields_split_by_finalize_matches_signing_the_whole_message(key_pem, head, body, with_blank_line):
    """dkim_sign_fields (the header fields as mime.split_head gives them, not parsed again)
    writes exactly what dkim_sign writes for the joined message, or fails as it does: broken
    fields, "From " lines, continuation lines first, no blank line."""
    from sending.dkim import dkim_sign_fields
    from sending.mime import split_head

    raw = normalize_line_endings(head + (b"\r\n" + body if with_blank_line else b""))
    fields, rest = split_head(raw)
    sign = dict(domain="example.com", selector="s1", private_key_pem=key_pem, timestamp=1_800_000_000)
    try:
        expected = dkim_sign(b"".join(fields) + rest, **sign)
    except Exception as exc:  # noqa: BLE001 - whatever it is, the fields' path must fail alike
        with pytest.raises(type(exc)):
            dkim_sign_fields(fields, rest, **sign)
        return
    assert dkim_sign_fields(fields, rest, **sign) == expected
