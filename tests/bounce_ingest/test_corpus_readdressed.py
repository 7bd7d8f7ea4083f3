"""Real bounces and complaints from ../shared/corpus/bounces/, re-addressed to one of our
recipients (their failed address replaced by ours, sent to its return path), are ingested right."""
import re
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from sending.models import Recipient, Suppression
from tests.bounce_ingest.conftest import DOMAIN, events, ingest, return_path

pytestmark = pytest.mark.django_db

CORPUS = Path(django_settings.BASE_DIR).parent / "shared" / "corpus" / "bounces" / "eml"


@pytest.fixture(autouse=True)
def _corpus_present():
    # As tests/bounces/conftest.py: the corpus lives next to the repository, not in it.
    if not CORPUS.is_dir():
        pytest.skip(f"bounce corpus not found at {CORPUS} (expected ../shared/corpus/bounces next to the repo)")


def readdressed(name, their_address, ours):
    raw = (CORPUS / name).read_bytes()
    assert their_address.encode() in raw
    return re.sub(re.escape(their_address.encode()), ours.encode(), raw, flags=re.IGNORECASE)


@pytest.mark.parametrize("name, their_address, bounce_type, bounce_class, suppressed", [
    ("lhost-postfix-04.eml", "kijitora@example.co.jp", "hard", "InvalidRecipient", True),    # RFC 3464 (Postfix)
    ("lhost-qmail-16.eml", "userunknown@libsisimai.net", "hard", "InvalidRecipient", True),  # qmail free text
    ("lhost-gmail-01.eml", "userunknown@example.jp", "hard", "InvalidRecipient", True),      # Gmail
    ("lhost-qmail-09.eml", "neko@example.co.jp", "soft", "SpamBlock", False),                # a block: keep the address
])
def test_a_real_bounce_readdressed_to_our_recipient(tenant, send, name, their_address, bounce_type, bounce_class, suppressed):
    message, [rcpt] = send("target@dest.example")

    report = ingest(return_path(rcpt), readdressed(name, their_address, rcpt.email))

    rcpt.refresh_from_db()
    assert (report.kind, report.recipient_id) == ("dsn", rcpt.id)
    assert (rcpt.status, rcpt.bounce_type, rcpt.bounce_class) == ("bounced", bounce_type, bounce_class)
    assert Suppression.objects.for_tenant(tenant).filter(email=rcpt.email).exists() is suppressed


def test_a_real_complaint_sent_to_the_feedback_address_is_matched_by_its_quoted_return_path(tenant, send):
    message, [rcpt, bystander] = send("reader@dest.example", "bystander@dest.example")
    raw = readdressed("arf-01.eml", "redacted@example.net", rcpt.email)
    raw = raw.replace(b"Return-Path: <support@example.ed.jp>", f"Return-Path: <{return_path(rcpt)}>".encode())
    fbl = f"fbl@bounces.{DOMAIN}"

    report = ingest(fbl, raw)

    assert (report.kind, report.recipient_id) == ("arf", rcpt.id)
    assert report.result["recipients"][0]["matched_by"] == "verp_quoted"
    entry = Suppression.objects.for_tenant(tenant).get()
    assert (entry.email, entry.source, entry.feedback_type) == ("reader@dest.example", "complaint", "abuse")
    assert [e.payload["recipient"] for e in events(tenant, "complained")] == ["reader@dest.example"]
    assert Recipient.objects.get(pk=bystander.pk).status == "delivered"
