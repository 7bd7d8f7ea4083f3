"""DKIM signing (dkimpy canonicalisation + cryptography RSA) verified by dkimpy and by OpenDKIM,
and the per-recipient finishing done at delivery."""
import email
from email import policy

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sending.dkim import DKIMSigningError, dkim_sign, public_key_record
from sending.mime import finalize_for_recipient
from sending.models import Message
from sending.unsubscribe import make_token, read_token

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
        assert read_token(url.rsplit("/", 1)[1]) == recipient.id
        assert dkim.verify(copy, dnsfunc=dns_for(verified_domain.dkim_selector, "example.com", record))
        signature = dkim.util.parse_tag_value(parsed["DKIM-Signature"].encode().replace(b"\r\n", b""))
        assert signature[b"d"] == b"example.com" and signature[b"s"] == verified_domain.dkim_selector.encode()
        assert b"list-unsubscribe" in signature[b"h"]
        copies[recipient.email] = copy
    assert copies["a@example.org"] != copies["b@example.org"]


@pytest.mark.django_db
def test_finalize_strips_control_headers_and_replaces_a_clients_list_unsubscribe(verified_domain, tenant):
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
    assert parsed.get_all("List-Unsubscribe") == [f"<{make_unsubscribe_url(recipient)}>"]
    assert parsed["Subject"] == "s" and parsed.get_content().strip() == "body"


def make_unsubscribe_url(recipient):
    from django.conf import settings

    return f"{settings.DISPATCH_PUBLIC_URL}/u/{make_token(recipient)}"


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
class _Recipient:
    def __init__(self, pk):
        self.pk = self.id = pk


def test_unsubscribe_tokens_round_trip_and_resist_tampering():
    token = make_token(_Recipient(123456))
    assert read_token(token) == 123456
    value, _, signature = token.partition(":")
    forged = make_token(_Recipient(123457)).partition(":")[0] + ":" + signature
    assert read_token(forged) is None
    assert read_token(token[:-2] + ("AA" if not token.endswith("AA") else "BB")) is None
    assert read_token("") is None and read_token("x" * 500) is None and read_token(None) is None


def test_unsubscribe_tokens_are_bound_to_their_purpose():
    from django.core import signing

    other_purpose = signing.Signer(salt="something.else").sign(signing.b62_encode(5))
    assert read_token(other_purpose) is None
