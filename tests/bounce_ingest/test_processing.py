"""Processing stored inbound reports: bounces, delays, auto-replies, complaints, idempotency,
the soft-bounce rule, the fallbacks that find the original message, and tenant isolation."""
from datetime import timedelta

import pytest
from django.utils import timezone

from sending.bounces import ingest as service
from sending.bounces import verp
from sending.models import InboundReport, Message, Recipient, Suppression
from tenants.models import UsageCounter
from tests.bounce_ingest.conftest import (
    DOMAIN, OTHER_DOMAIN, arf, delivered, dsn, events, ingest, return_path, returned_headers,
)

pytestmark = pytest.mark.django_db

FBL = f"fbl@bounces.{DOMAIN}"


def suppressions(tenant):
    return {s.email: s for s in Suppression.objects.for_tenant(tenant)}


def test_a_hard_bounce_report_bounces_the_recipient_and_suppresses_the_address(tenant, send):
    message, [alice] = send("Alice@dest.example")

    report = ingest(return_path(alice), dsn(to=return_path(alice), recipient_address="Alice@dest.example",
                                           headers=returned_headers(message, alice)))

    alice.refresh_from_db()
    assert (alice.status, alice.bounce_type, alice.bounce_class) == ("bounced", "hard", "InvalidRecipient")
    assert alice.bounced_at is not None and alice.last_enhanced_status == "5.1.1" and alice.last_response_code == 550
    assert "User unknown" in alice.last_response_text
    message.refresh_from_db()
    assert (message.status, message.bounce_type) == (Message.Status.BOUNCED, "hard") and message.bounced_at
    assert (report.kind, report.recipient_id, report.message_id, report.tenant_id) == ("dsn", alice.id, message.id, tenant.id)
    assert list(alice.inbound_reports.all()) == [report]
    assert report.result["recipients"][0]["matched_by"] == "verp"
    entry = suppressions(tenant)["alice@dest.example"]
    assert (entry.source, entry.bounce_class, entry.source_message_id) == ("bounce", "InvalidRecipient", message.id)
    assert entry.reason.startswith("hard bounce:")
    [event] = events(tenant, "bounced")
    assert (event.payload["recipient"], event.payload["bounce_type"], event.payload["bounce_classification"]) == (
        "Alice@dest.example", "hard", "InvalidRecipient")
    assert event.payload["response"]["code"] == 550


@pytest.mark.parametrize("status, diagnostic, bounce_class", [
    ("5.7.1", "550 5.7.1 Service unavailable; client host [192.0.2.1] blocked using zen.spamhaus.org", "SpamBlock"),
    ("5.2.2", "552 5.2.2 Mailbox full", "QuotaIssues"),
])
def test_a_soft_bounce_report_bounces_without_suppressing(tenant, send, status, diagnostic, bounce_class):
    message, [bob] = send("bob@dest.example")

    ingest(return_path(bob), dsn(to=return_path(bob), recipient_address="bob@dest.example", status=status, diagnostic=diagnostic))

    bob.refresh_from_db()
    assert (bob.status, bob.bounce_type, bob.bounce_class) == ("bounced", "soft", bounce_class)
    assert suppressions(tenant) == {}
    assert [e.payload["bounce_type"] for e in events(tenant, "bounced")] == ["soft"]


def test_a_delayed_report_does_not_bounce(tenant, send):
    message, [carol] = send("carol@dest.example")

    report = ingest(return_path(carol), dsn(to=return_path(carol), recipient_address="carol@dest.example", action="delayed",
                                           status="4.4.7", diagnostic="451 4.4.7 delivery delayed"))

    carol.refresh_from_db()
    assert carol.status == "delivered" and carol.bounce_type is None
    assert suppressions(tenant) == {} and events(tenant, "bounced") == []
    assert report.processed_at and report.result["recipients"][0]["outcome"] == "delayed: no bounce"


def test_an_auto_reply_is_recorded_and_ignored(tenant, send):
    message, [dave] = send("dave@dest.example")
    reply = (f"From: Dave <dave@dest.example>\r\nTo: {return_path(dave)}\r\nSubject: Out of Office: {message.subject}\r\n"
             "Auto-Submitted: auto-replied\r\n\r\nI am on holiday until Monday.\r\n").encode()

    report = ingest(return_path(dave), reply)

    assert report.kind == "autoreply" and report.processed_at is not None
    dave.refresh_from_db()
    assert dave.status == "delivered" and suppressions(tenant) == {} and events(tenant, "bounced") == []


def test_processing_the_same_report_twice_changes_nothing_more(tenant, send):
    message, [erin] = send("erin@dest.example")
    report = ingest(return_path(erin), dsn(to=return_path(erin), recipient_address="erin@dest.example"))
    first = dict(report.result)

    assert service.report_process(report_id=report.id) == first
    report.refresh_from_db()
    assert report.attempts == 1
    assert len(events(tenant, "bounced")) == 1 and len(suppressions(tenant)) == 1


def test_a_second_report_for_a_bounced_recipient_emits_nothing_new(tenant, send):
    message, [fay] = send("fay@dest.example")
    raw = dsn(to=return_path(fay), recipient_address="fay@dest.example")
    ingest(return_path(fay), raw)
    second = ingest(return_path(fay), raw)

    assert second.result["recipients"][0]["outcome"] == "bounced hard (already suppressed)"
    assert len(events(tenant, "bounced")) == 1 and len(suppressions(tenant)) == 1


def test_a_soft_bounce_followed_by_a_hard_one_becomes_hard_and_is_suppressed(tenant, send):
    message, [gus] = send("gus@dest.example")
    ingest(return_path(gus), dsn(to=return_path(gus), recipient_address="gus@dest.example", status="5.2.2", diagnostic="552 5.2.2 Mailbox full"))
    ingest(return_path(gus), dsn(to=return_path(gus), recipient_address="gus@dest.example"))

    gus.refresh_from_db()
    assert (gus.status, gus.bounce_type) == ("bounced", "hard")
    assert "gus@dest.example" in suppressions(tenant)
    assert len(events(tenant, "bounced")) == 1


def test_repeated_soft_bounces_suppress_when_configured(tenant, send, settings):
    settings.DISPATCH_SOFT_BOUNCE_SUPPRESS_AFTER = 3
    settings.DISPATCH_SOFT_BOUNCE_WINDOW_DAYS = 7
    full = {"status": "5.2.2", "diagnostic": "552 5.2.2 Mailbox full"}
    old_message, [old] = send("hal@dest.example")
    ingest(return_path(old), dsn(to=return_path(old), recipient_address="hal@dest.example", **full))
    Recipient.objects.filter(pk=old.pk).update(bounced_at=timezone.now() - timedelta(days=8))  # outside the window

    for expected in ({}, {}, {"hal@dest.example"}):
        message, [hal] = send("HAL@dest.example")
        assert set(suppressions(tenant)) == set()
        report = ingest(return_path(hal), dsn(to=return_path(hal), recipient_address="HAL@dest.example", **full))
        assert set(suppressions(tenant)) == set(expected)

    entry = suppressions(tenant)["hal@dest.example"]
    assert (entry.reason, entry.source, entry.bounce_class) == ("repeated soft bounces", "bounce", "QuotaIssues")
    assert report.result["recipients"][0]["outcome"] == "bounced soft, suppressed after repeated soft bounces"


def test_repeated_soft_bounces_never_suppress_by_default(tenant, send):
    for _ in range(4):
        message, [ian] = send("ian@dest.example")
        ingest(return_path(ian), dsn(to=return_path(ian), recipient_address="ian@dest.example", status="5.2.2",
                                     diagnostic="552 5.2.2 Mailbox full"))
    assert suppressions(tenant) == {}


def test_a_complaint_emits_complained_and_suppresses_with_the_feedback_type(tenant, send):
    message, [jo] = send("jo@dest.example")

    report = ingest(FBL, arf(to=FBL, recipient_address="jo@dest.example", returned=returned_headers(message, jo),
                             feedback_type="abuse"))

    assert report.kind == "arf" and report.recipient_id == jo.id
    entry = suppressions(tenant)["jo@dest.example"]
    assert (entry.reason, entry.source, entry.feedback_type, entry.source_message_id) == ("complaint", "complaint", "abuse", message.id)
    [event] = events(tenant, "complained")
    assert (event.payload["recipient"], event.payload["feedback_type"]) == ("jo@dest.example", "abuse")
    jo.refresh_from_db()
    assert jo.status == "delivered"  # a complaint is about a delivered message

    ingest(FBL, arf(to=FBL, recipient_address="jo@dest.example", returned=returned_headers(message, jo)))
    assert len(events(tenant, "complained")) == 1
    assert UsageCounter.objects.get(tenant=tenant).complaint == 1  # counted once, through the event


def test_a_redacted_complaint_is_matched_by_message_id_when_the_message_had_one_recipient(tenant, send):
    message, [kim] = send("kim@dest.example")
    headers = f"Message-ID: <{message.message_id}>\nFrom: {message.from_address}\nSubject: hi\n"

    report = ingest(FBL, arf(to=FBL, recipient_address="redacted@dest.example", returned=headers))

    assert report.result["recipients"][0]["matched_by"] == "message_id"
    assert "kim@dest.example" in suppressions(tenant)


def test_a_complaint_without_message_id_is_matched_by_the_quoted_unsubscribe_link(tenant, send):
    from sending.unsubscribe import unsubscribe_url

    message, [lee, max_] = send("lee@dest.example", "max@dest.example")
    headers = f"From: {message.from_address}\nList-Unsubscribe: <{unsubscribe_url(max_)}>\nSubject: hi\n"

    report = ingest(FBL, arf(to=FBL, recipient_address="redacted@dest.example", returned=headers))

    assert report.result["recipients"][0]["matched_by"] == "unsubscribe_token"
    assert set(suppressions(tenant)) == {"max@dest.example"}


def test_a_quoted_unsubscribe_link_of_the_old_signed_id_form_still_matches(tenant, send, settings):
    from django.core import signing

    message, [lee, max_] = send("lee@dest.example", "max@dest.example")
    token = signing.Signer(salt="dispatch.sending.unsubscribe").sign(signing.b62_encode(max_.pk))
    headers = f"From: {message.from_address}\nList-Unsubscribe: <{settings.DISPATCH_PUBLIC_URL}/u/{token}>\nSubject: hi\n"

    report = ingest(FBL, arf(to=FBL, recipient_address="redacted@dest.example", returned=headers))

    assert report.result["recipients"][0]["matched_by"] == "unsubscribe_token"
    assert set(suppressions(tenant)) == {"max@dest.example"}


def test_a_report_to_the_feedback_address_is_matched_by_our_message_id(tenant, send):
    message, [ned, olga] = send("ned@dest.example", "olga@dest.example")
    headers = f"Message-ID: <{message.message_id}>\nFrom: {message.from_address}\nSubject: hi\n"

    report = ingest(FBL, dsn(to=FBL, recipient_address="olga@dest.example", headers=headers))

    assert report.result["recipients"][0]["matched_by"] == "message_id"
    assert Recipient.objects.get(pk=olga.pk).status == "bounced"
    assert Recipient.objects.get(pk=ned.pk).status == "delivered"


def test_x_dispatch_message_id_of_the_returned_copy_identifies_the_message(tenant, send):
    message, [pat] = send("pat@dest.example")
    headers = f"X-Dispatch-Message-Id: {message.id}\nFrom: {message.from_address}\nSubject: hi\n"

    report = ingest(FBL, dsn(to=FBL, recipient_address="pat@dest.example", headers=headers))

    assert report.result["recipients"][0]["matched_by"] == "x-dispatch"
    assert "pat@dest.example" in suppressions(tenant)


def test_a_report_nobody_can_be_matched_to_is_recorded_without_changes(tenant, send):
    message, [quinn] = send("quinn@dest.example")

    report = ingest(FBL, dsn(to=FBL, recipient_address="quinn@dest.example", headers="Message-ID: <unknown@elsewhere.example>\n"))

    assert report.processed_at and report.recipient_id is None
    assert report.result["recipients"][0]["outcome"] == "no matching recipient of ours"
    assert Recipient.objects.get(pk=quinn.pk).status == "delivered" and suppressions(tenant) == {}


# --- tenant isolation -------------------------------------------------------------------------------
def test_a_verp_address_of_tenant_a_only_affects_tenant_a(tenant, other_tenant, send, other_shop):
    a_message, [a_rcpt] = send("shared@dest.example")
    b_message, [b_rcpt] = delivered(other_tenant, "shared@dest.example", sender=f"news@{OTHER_DOMAIN}")
    # The report arrives at A's return path but quotes B's message.
    report = ingest(return_path(a_rcpt), dsn(to=return_path(a_rcpt), recipient_address="shared@dest.example",
                                             headers=returned_headers(b_message, b_rcpt)))

    assert report.recipient_id == a_rcpt.id
    assert Recipient.objects.get(pk=a_rcpt.pk).status == "bounced"
    assert Recipient.objects.get(pk=b_rcpt.pk).status == "delivered"
    assert Suppression.objects.filter(tenant=other_tenant).count() == 0
    assert events(other_tenant, "bounced") == []


def test_a_feedback_address_only_matches_messages_of_the_tenants_owning_its_domain(tenant, other_tenant, send, other_shop):
    b_message, [b_rcpt] = delivered(other_tenant, "victim@dest.example", sender=f"news@{OTHER_DOMAIN}")
    from sending.unsubscribe import unsubscribe_url

    headers = (f"Message-ID: <{b_message.message_id}>\nReturn-Path: <{return_path(b_rcpt)}>\n"
               f"List-Unsubscribe: <{unsubscribe_url(b_rcpt)}>\nSubject: hi\n")
    report = ingest(FBL, arf(to=FBL, recipient_address="victim@dest.example", returned=headers))

    assert report.recipient_id is None
    assert Suppression.objects.filter(tenant=other_tenant).count() == 0
    assert events(other_tenant, "complained") == []


def test_a_verp_address_at_another_tenants_domain_is_not_ours(tenant, send, other_shop):
    message, [rcpt] = send("x@dest.example")
    assert service.verp_recipient(return_path(rcpt)) == rcpt
    assert service.verp_recipient(verp.encode(rcpt.id, f"bounces.{OTHER_DOMAIN}")) is None
    assert service.verp_recipient(verp.encode(rcpt.id, "bounces.unrelated.example")) is None


# --- storage and the sweeper ------------------------------------------------------------------------
def test_the_raw_report_is_stored_encrypted_and_bound_to_its_row(tenant, send):
    from dispatch_site import crypto

    message, [rcpt] = send("ray@dest.example")
    raw = dsn(to=return_path(rcpt), recipient_address="ray@dest.example")
    [report_id] = service.reports_store(envelope_from="", rcpt_tos=[return_path(rcpt)], raw=raw)
    report = InboundReport.objects.get(pk=report_id)

    assert raw not in bytes(report.raw) and b"ray@dest.example" not in bytes(report.raw)
    assert crypto.decrypt(report.raw, report.raw_associated_data) == raw
    other = InboundReport.objects.create(envelope_to="x@y.example", raw=report.raw)
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(other.raw, other.raw_associated_data)
    assert service.report_process(report_id=other.id)["error"].startswith("cannot decrypt")


def test_the_sweeper_processes_reports_whose_task_was_lost(tenant, send):
    message, [sam] = send("sam@dest.example")
    [old_id] = service.reports_store(envelope_from="", rcpt_tos=[return_path(sam)],
                                     raw=dsn(to=return_path(sam), recipient_address="sam@dest.example"))
    [new_id] = service.reports_store(envelope_from="", rcpt_tos=[return_path(sam)], raw=b"Subject: hi\r\n\r\nhello\r\n")
    InboundReport.objects.filter(pk=old_id).update(received_at=timezone.now() - timedelta(minutes=2))

    assert service.reports_sweep() == 1

    assert InboundReport.objects.get(pk=old_id).processed_at is not None
    assert InboundReport.objects.get(pk=new_id).processed_at is None
    assert Recipient.objects.get(pk=sam.pk).status == "bounced"


def test_a_report_that_keeps_failing_is_given_up_after_the_attempt_limit(tenant, send, monkeypatch):
    message, [tom] = send("tom@dest.example")
    [report_id] = service.reports_store(envelope_from="", rcpt_tos=[return_path(tom)],
                                        raw=dsn(to=return_path(tom), recipient_address="tom@dest.example"))

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(service, "_bounce", broken)
    for _ in range(service.MAX_ATTEMPTS):
        with pytest.raises(RuntimeError):
            service.report_process(report_id=report_id)
    result = service.report_process(report_id=report_id)

    assert result["error"].startswith("gave up")
    assert InboundReport.objects.get(pk=report_id).processed_at is not None


def test_processed_reports_are_deleted_after_the_retention_period(tenant, send, settings):
    settings.DISPATCH_INBOUND_REPORT_RETENTION_DAYS = 30
    message, [uma] = send("uma@dest.example")
    old = ingest(return_path(uma), dsn(to=return_path(uma), recipient_address="uma@dest.example"))
    recent = ingest(return_path(uma), dsn(to=return_path(uma), recipient_address="uma@dest.example"))
    InboundReport.objects.filter(pk=old.pk).update(processed_at=timezone.now() - timedelta(days=31))

    service.reports_sweep()

    assert list(InboundReport.objects.values_list("id", flat=True)) == [recent.id]
    assert Recipient.objects.get(pk=uma.pk).status == "bounced"  # the outcome stays


def test_operators_see_reports_in_the_admin_without_the_raw_message(tenant, send, admin_client):
    message, [vic] = send("vic@dest.example")
    report = ingest(return_path(vic), dsn(to=return_path(vic), recipient_address="vic@dest.example"))

    listing = admin_client.get("/admin/sending/inboundreport/")
    detail = admin_client.get(f"/admin/sending/inboundreport/{report.pk}/change/")

    assert listing.status_code == 200 and return_path(vic).encode() in listing.content
    assert detail.status_code == 200 and b"InvalidRecipient" in detail.content
    assert b"Mail Delivery System" not in detail.content


@pytest.mark.parametrize("raw", [b"", b"\x00\xff\xfe garbage \r\n\r\n\x80", b"Subject: hello\r\n\r\nnot a report\r\n"])
def test_anything_that_is_not_a_report_is_recorded_and_dropped(tenant, send, raw):
    message, [wes] = send("wes@dest.example")

    report = ingest(return_path(wes), raw)

    assert (report.kind, report.result["recipients"]) == ("not_bounce", [])
    assert report.processed_at is not None and Recipient.objects.get(pk=wes.pk).status == "delivered"
