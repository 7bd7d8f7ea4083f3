"""sending.services.submit_raw: the SMTP gateway's entry to the same submission path."""
import email
from email import policy

import pytest

from dispatch_site.errors import DomainNotVerified, MessageTooLarge, RecipientSuppressed, TenantNotActive, TooManyRecipients, ValidationFailed
from sending.addresses import InvalidAddress
from sending.models import Message, Suppression
from sending.services import submit_raw

from .conftest import make_verified_domain
from .test_send_api import stored_mime

pytestmark = pytest.mark.django_db

RAW = (
    b"From: Shop <shop@example.com>\r\nTo: Alice <alice@example.org>\r\nCc: carol@example.org\r\n"
    b"Bcc: secret@example.org\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nX-Custom: kept\r\n\r\nHello Alice\r\n"
)


def submit(tenant, raw=RAW, mail_from="bounces@example.com", rcpt_tos=("alice@example.org", "carol@example.org", "dave@example.org"), **kw):
    return submit_raw(tenant=tenant, mail_from=mail_from, rcpt_tos=list(rcpt_tos), raw=raw, **kw)


def test_it_keeps_the_clients_mime_and_adds_message_id_and_date(tenant, verified_domain, credential):
    result = submit(tenant, credential=credential)
    message = result.message
    assert message.source == "smtp" and message.credential == credential
    raw, parsed = stored_mime(message)
    assert raw.endswith(RAW.split(b"Bcc: secret@example.org\r\n")[1])  # everything after Bcc unchanged
    assert parsed["Message-ID"] == f"<{message.message_id}>"
    assert parsed["Date"] is not None
    assert parsed["Bcc"] is None and b"secret@" not in raw
    assert parsed["X-Custom"] == "kept"
    assert message.subject == "Grüße"
    assert message.from_address == "shop@example.com" and message.from_header == "Shop <shop@example.com>"
    assert message.to_addresses == ["alice@example.org"] and message.cc_addresses == ["carol@example.org"]
    assert dict(message.recipients.values_list("email", "kind")) == {
        "alice@example.org": "to", "carol@example.org": "cc", "dave@example.org": "bcc",
    }
    assert message.bcc_count == 1
    assert result.response["message"] == "3 email(s) queued for delivery"


def test_a_clients_message_id_and_date_are_kept(tenant, verified_domain):
    raw = b"Message-ID: <client-1@shop.example>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n" + RAW
    message = submit(tenant, raw=raw).message
    stored, parsed = stored_mime(message)
    assert parsed["Message-ID"] == "<client-1@shop.example>" and parsed.get_all("Date") == ["Mon, 23 Nov 2026 10:00:00 +0000"]
    assert message.header_message_id == "client-1@shop.example"
    assert message.message_id.endswith("@mail.dispatch.test")
    # The same client Message-ID again (a resend) is still accepted: our own id is the unique one.
    assert submit(tenant, raw=raw).message.header_message_id == "client-1@shop.example"


def test_control_headers_map_to_tags_and_metadata_and_are_stripped(tenant, verified_domain):
    raw = b'X-Dispatch-Tags: welcome, onboarding\r\nX-Dispatch-Metadata: {"user_id": 7}\r\n' + RAW
    message = submit(tenant, raw=raw).message
    assert message.tags == ["welcome", "onboarding"] and message.metadata == {"user_id": 7}
    stored, _ = stored_mime(message)
    assert b"X-Dispatch" not in stored
    raw = b'X-Dispatch-Tags: ["a", "b"]\r\n' + RAW
    assert submit(tenant, raw=raw).message.tags == ["a", "b"]


@pytest.mark.parametrize("header", [b"X-Dispatch-Metadata: [1]", b"X-Dispatch-Metadata: {bad", b'X-Dispatch-Tags: ["a\\nb"]'])
def test_bad_control_headers_are_refused(tenant, verified_domain, header):
    with pytest.raises(ValidationFailed):
        submit(tenant, raw=header + b"\r\n" + RAW)
    assert not Message.objects.exists()


def test_line_endings_are_normalised_and_nul_is_refused(tenant, verified_domain):
    message = submit(tenant, raw=RAW.replace(b"\r\n", b"\n")).message
    stored, _ = stored_mime(message)
    assert b"\n" not in stored.replace(b"\r\n", b"")
    with pytest.raises(ValidationFailed):
        submit(tenant, raw=RAW.replace(b"Hello", b"Hel\x00lo"))


def test_header_from_and_mail_from_must_be_on_verified_domains(tenant, verified_domain, other_tenant):
    make_verified_domain(tenant, "second.example")
    make_verified_domain(other_tenant, "theirs.example")
    assert submit(tenant, mail_from="bounce@second.example").message  # another verified domain of the tenant: fine
    with pytest.raises(DomainNotVerified):
        submit(tenant, mail_from="bounce@theirs.example")
    with pytest.raises(DomainNotVerified):
        submit(tenant, raw=RAW.replace(b"shop@example.com", b"shop@theirs.example"))
    with pytest.raises(InvalidAddress):
        submit(tenant, mail_from="")


def test_a_sender_header_follows_the_from_rule(tenant, verified_domain, other_tenant):
    # Receivers show Sender next to From ("on behalf of", "via"): it must be the tenant's too.
    make_verified_domain(tenant, "second.example")
    make_verified_domain(other_tenant, "theirs.example")
    with_sender = lambda value: RAW.replace(b"To: Alice", b"Sender: " + value + b"\r\nTo: Alice")  # noqa: E731
    assert submit(tenant, raw=with_sender(b"Ops <ops@example.com>")).message
    assert submit(tenant, raw=with_sender(b"ops@second.example")).message  # another verified domain of the tenant
    with pytest.raises(DomainNotVerified) as info:
        submit(tenant, raw=with_sender(b"CEO <ceo@theirs.example>"))
    assert info.value.smtp_reply[0] == 550
    for value in (b"ops@example.com, ceo@theirs.example", b"ops@example.com <ceo@theirs.example>"):
        with pytest.raises(InvalidAddress):
            submit(tenant, raw=with_sender(value))
    two_senders = RAW.replace(b"To: Alice", b"Sender: ops@example.com\r\nSender: ops@example.com\r\nTo: Alice")
    with pytest.raises(InvalidAddress):
        submit(tenant, raw=two_senders)
    assert Message.objects.count() == 2


@pytest.mark.parametrize("raw", [
    RAW.replace(b"From: Shop <shop@example.com>\r\n", b""),
    b"From: other@example.com\r\n" + RAW,
    RAW.replace(b"From: Shop <shop@example.com>", b"From: shop@example.com, other@example.com"),
])
def test_exactly_one_from_mailbox(tenant, verified_domain, raw):
    with pytest.raises(InvalidAddress):
        submit(tenant, raw=raw)


@pytest.mark.parametrize("from_", [
    b"shop@example.com <ceo@victim.example>",
    b"<shop@example.com>ceo@victim.example",
    b"Shop <shop@example.com> <ceo@victim.example>",
    b"shop@example.com ceo@victim.example",
    b"shop@example.com; ceo@victim.example",
    b"shop@example.com\\@victim.example",
])
def test_a_from_the_parser_reads_only_by_guessing_is_refused(tenant, verified_domain, from_):
    # The email package recovers shop@example.com from each (with a defect); receivers may read
    # ceo@victim.example, a domain the tenant does not own.
    with pytest.raises(InvalidAddress) as info:
        submit(tenant, raw=RAW.replace(b"Shop <shop@example.com>", from_))
    assert info.value.smtp_reply == (553, "5.1.3")
    assert not Message.objects.exists()


@pytest.mark.parametrize("from_", [
    b"shop@example.com", b'"Shop, Inc." <shop@example.com>', b"Dr. Shop <shop@example.com>",
    b"shop@example.com (Shop)", b"=?utf-8?q?Gr=C3=BC=C3=9Fe?= <shop@example.com>", b"Shop\r\n <shop@example.com>",
])
def test_usual_from_forms_are_accepted(tenant, verified_domain, from_):
    result = submit(tenant, raw=RAW.replace(b"Shop <shop@example.com>", from_))
    assert result.message.from_address == "shop@example.com"


@pytest.mark.parametrize("raw", [
    RAW.replace(b"To: Alice", b"From : CEO <ceo@victim.example>\r\nTo: Alice"),
    b"From : CEO <ceo@victim.example>\r\n" + RAW,
    RAW.replace(b"To: Alice", b"Sender\t: ceo@victim.example\r\nTo: Alice"),
    RAW.replace(b"To: Alice", b"no colon here\r\nTo: Alice"),
    b" folded first line\r\n" + RAW,
])
def test_a_header_block_with_a_line_that_is_not_a_field_is_refused(tenant, verified_domain, raw):
    # Parsers disagree on such lines (white space before the colon is obsolete syntax that
    # receivers still read): the From we checked might not be the From the recipient sees.
    with pytest.raises(ValidationFailed) as info:
        submit(tenant, raw=raw)
    assert info.value.smtp_reply == (550, "5.6.0")
    assert not Message.objects.exists()


@pytest.mark.parametrize("from_", [b"=?utf-8?q?Shop=0D=0ABcc:_v@example.org?= <shop@example.com>", b"=?utf-8?q?Shop=07?= <shop@example.com>"])
def test_a_from_display_name_decoding_to_control_characters_is_refused_for_good(tenant, verified_domain, from_):
    # Refused as bad input (5xx), not an unexpected error the client would retry forever.
    with pytest.raises(ValidationFailed) as info:
        submit(tenant, raw=RAW.replace(b"Shop <shop@example.com>", from_))
    assert info.value.smtp_reply[0] // 100 == 5
    assert not Message.objects.exists()


@pytest.mark.parametrize("rcpt", ["v@[127.0.0.1]", "@relay.example:v@example.org", "a%b@example.org", "a!b@example.org", "x" * 65 + "@example.org"])
def test_dangerous_recipients_are_refused(tenant, verified_domain, rcpt):
    with pytest.raises(InvalidAddress) as info:
        submit(tenant, rcpt_tos=[rcpt])
    assert info.value.smtp_reply == (553, "5.1.3")


def test_the_same_checks_apply(tenant, verified_domain, settings):
    Suppression.objects.create(tenant=tenant, email="alice@example.org")
    with pytest.raises(RecipientSuppressed) as info:
        submit(tenant, rcpt_tos=["alice@example.org"])
    assert info.value.smtp_reply == (550, "5.1.1")
    settings.DISPATCH_MAX_RECIPIENTS = 2
    with pytest.raises(TooManyRecipients):
        submit(tenant)
    settings.DISPATCH_MAX_MESSAGE_BYTES = 1024
    with pytest.raises(MessageTooLarge):
        submit(tenant, raw=RAW + b"x" * 2000, rcpt_tos=["bob@example.org"])
    tenant.status = "blocked"
    with pytest.raises(TenantNotActive):
        submit(tenant, rcpt_tos=["bob@example.org"])
    assert not Message.objects.exists()


def test_attachments_are_detected(tenant, verified_domain):
    raw = (
        b"From: shop@example.com\r\nTo: alice@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n'
        b'--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="a.pdf"\r\n\r\nJVBER\r\n--b--\r\n'
    )
    assert submit(tenant, raw=raw, rcpt_tos=["alice@example.org"]).message.has_attachments
    assert not submit(tenant, rcpt_tos=["alice@example.org"]).message.has_attachments


def test_parsed_back_the_message_is_intact(tenant, verified_domain):
    stored, _ = stored_mime(submit(tenant).message)
    parsed = email.message_from_bytes(stored, policy=policy.default)
    assert parsed.get_content().strip() == "Hello Alice"
    assert str(parsed["Subject"]) == "Grüße"


def test_submit_raw_many_checks_each_item_and_stores_the_accepted_together(tenant, verified_domain):
    from sending.services import SubmitResult, submit_raw_many

    items = [
        {"mail_from": "shop@example.com", "rcpt_tos": ["a@example.org"], "raw": RAW},
        {"mail_from": "shop@example.com", "rcpt_tos": ["b@example.org"], "raw": RAW.replace(b"shop@example.com", b"shop@elsewhere.example")},
        {"mail_from": "shop@example.com", "rcpt_tos": ["c@example.org", "d@example.org"], "raw": RAW},
    ]
    outcomes = submit_raw_many(tenant=tenant, items=items)
    assert isinstance(outcomes[0], SubmitResult) and isinstance(outcomes[2], SubmitResult)
    assert isinstance(outcomes[1], DomainNotVerified)
    assert sorted(Message.objects.values_list("recipients__email", flat=True)) == ["a@example.org", "c@example.org", "d@example.org"]
    assert outcomes[2].response["message"] == "2 email(s) queued for delivery"


@pytest.mark.parametrize("broken", [b"To: broken <\r\n", b"Cc: x@example.org, <\r\n"])
def test_a_header_the_standard_parser_chokes_on_refuses_that_message_only(tenant, verified_domain, broken):
    """The email package raises IndexError on some malformed address lists; in a gateway batch
    that must not fail the other clients' messages."""
    from sending.services import SubmitResult, submit_raw_many

    bad = RAW.replace(b"To: Alice <alice@example.org>\r\n", broken)
    items = [
        {"mail_from": "shop@example.com", "rcpt_tos": ["a@example.org"], "raw": RAW},
        {"mail_from": "shop@example.com", "rcpt_tos": ["b@example.org"], "raw": bad},
    ]
    good, refused = submit_raw_many(tenant=tenant, items=items)
    assert isinstance(good, SubmitResult)
    assert isinstance(refused, ValidationFailed) and "header cannot be parsed" in refused.message
    assert refused.smtp_text.startswith("550 5.6.0")
    assert list(Message.objects.values_list("recipients__email", flat=True)) == ["a@example.org"]


def test_an_unexpected_error_checking_one_message_asks_only_that_client_to_retry(tenant, verified_domain, monkeypatch):
    from dispatch_site.errors import TemporaryFailure
    from sending import services

    real_prepare = services.prepare_raw_message

    def prepare_failing_for_b(**kwargs):
        if kwargs["rcpt_tos"] == ["b@example.org"]:
            raise KeyError("a bug")
        return real_prepare(**kwargs)

    monkeypatch.setattr(services, "prepare_raw_message", prepare_failing_for_b)
    items = [
        {"mail_from": "shop@example.com", "rcpt_tos": ["a@example.org"], "raw": RAW},
        {"mail_from": "shop@example.com", "rcpt_tos": ["b@example.org"], "raw": RAW},
    ]
    good, failed = services.submit_raw_many(tenant=tenant, items=items)
    assert isinstance(good, services.SubmitResult)
    assert isinstance(failed, TemporaryFailure) and failed.smtp_text.startswith("451 4.3.0")


def test_raw_utf8_headers_from_an_smtputf8_client_are_stored_readably(tenant, verified_domain):
    raw = RAW.replace(b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=", "Subject: Grüße aus Köln".encode())
    raw = raw.replace(b"From: Shop <shop@example.com>", "From: Jöhn's Shöp <shop@example.com>".encode())
    message = submit(tenant, raw=raw).message
    message.refresh_from_db()
    assert message.subject == "Grüße aus Köln"
    assert message.from_header == "Jöhn's Shöp <shop@example.com>"
