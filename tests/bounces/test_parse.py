import time

from sending.bounces import verp
from sending.bounces.parse import parse_report

VERP = verp.encode(4242, "bounces.shop.example", secret="test")

RETURNED = """Return-Path: <{verp}>
Message-ID: <abc123@mail.dispatch.test>
X-Dispatch-Message-Id: 6d1f1f6e-8d39-4a51-bf3c-2a3d7c9f0a11
X-Dispatch-Tenant: t-1
From: Shop <hello@shop.example>
To: alice@example.org, bob@example.net
Subject: Your order

"""


def dsn(*recipient_blocks, human="The mail system could not deliver your message.", subject="Undelivered Mail Returned to Sender"):
    blocks = "\n".join(recipient_blocks)
    return f"""From: MAILER-DAEMON@mx.example.org (Mail Delivery System)
To: {VERP}
Subject: {subject}
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="BOUNDARY"

--BOUNDARY
Content-Type: text/plain

{human}

--BOUNDARY
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

{blocks}
--BOUNDARY
Content-Type: text/rfc822-headers

{RETURNED.format(verp=VERP)}
--BOUNDARY--
""".encode()


def block(recipient, action, status, diagnostic):
    return (f"Final-Recipient: rfc822; {recipient}\nAction: {action}\nStatus: {status}\n"
            f"Diagnostic-Code: smtp; {diagnostic}\n")


def test_an_rfc3464_report_gives_each_recipient_its_own_verdict():
    report = parse_report(dsn(
        block("alice@example.org", "failed", "5.1.1", "550 5.1.1 <alice@example.org>: Recipient address rejected: User unknown"),
        block("bob@example.net", "failed", "5.2.2", "552 5.2.2 Mailbox full"),
    ))
    assert report.kind == "dsn"
    by_address = {r.recipient: r for r in report.recipients}
    alice, bob = by_address["alice@example.org"], by_address["bob@example.net"]
    assert (alice.action, alice.status, alice.reply_code, alice.bounce_class, alice.disposition) == (
        "failed", "5.1.1", 550, "InvalidRecipient", "hard")
    assert (bob.status, bob.bounce_class, bob.disposition) == ("5.2.2", "QuotaIssues", "soft")


def test_it_finds_what_identifies_the_original_message():
    report = parse_report(dsn(block("alice@example.org", "failed", "5.1.1", "550 5.1.1 user unknown")))
    assert report.original_message_id == "abc123@mail.dispatch.test"
    assert report.original_headers == {"X-Dispatch-Message-Id": "6d1f1f6e-8d39-4a51-bf3c-2a3d7c9f0a11", "X-Dispatch-Tenant": "t-1"}
    assert report.envelope_to == [VERP]
    assert verp.decode(report.envelope_to[0], secret="test") == 4242


def test_a_reputation_block_is_not_a_hard_bounce():
    report = parse_report(dsn(block("alice@example.org", "failed", "5.7.1",
                                    "550 5.7.1 Service unavailable; client [192.0.2.1] blocked using zen.spamhaus.org")))
    assert (report.recipients[0].bounce_class, report.recipients[0].disposition) == ("SpamBlock", "soft")


def test_a_delayed_dsn_does_not_bounce():
    report = parse_report(dsn(block("alice@example.org", "delayed", "4.4.1", "connect to mx.example.org: Connection timed out"),
                              subject="Delayed Mail (still being retried)"))
    (result,) = report.recipients
    assert result.action == "delayed" and result.delayed
    assert result.disposition == "soft"


def test_a_delayed_user_unknown_is_still_not_hard():
    report = parse_report(dsn(block("alice@example.org", "delayed", "4.1.1", "450 4.1.1 User unknown in local recipient table")))
    assert report.recipients[0].disposition == "soft"


def test_a_success_dsn_is_delivered():
    report = parse_report(dsn(block("alice@example.org", "delivered", "2.0.0", "250 2.0.0 Ok: queued")))
    assert (report.recipients[0].action, report.recipients[0].disposition) == ("delivered", "delivered")


ARF = f"""From: feedback@fbl.mailbox.example
To: fbl@bounces.shop.example
Subject: Complaint
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="ARF"

--ARF
Content-Type: text/plain

This is an email abuse report.

--ARF
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeGenerator/1.0
Version: 1
Original-Mail-From: <{VERP}>
Original-Rcpt-To: <carol@mailbox.example>
Source-IP: 192.0.2.1

--ARF
Content-Type: message/rfc822

{RETURNED.format(verp=VERP)}Hello Carol
--ARF--
""".encode()


def test_an_arf_report_is_a_complaint_with_its_feedback_type():
    report = parse_report(ARF)
    assert report.kind == "arf"
    (result,) = report.recipients
    assert (result.recipient, result.disposition, result.feedback_type, result.bounce_class) == (
        "carol@mailbox.example", "complaint", "abuse", "FeedbackReport")
    assert report.original_headers["X-Dispatch-Tenant"] == "t-1"
    assert verp.is_feedback_address(report.envelope_to[0])


def test_an_out_of_office_reply_is_recognised_and_not_a_bounce():
    raw = b"""From: Dave <dave@example.org>
To: hello@shop.example
Subject: Automatic reply: Your order
Auto-Submitted: auto-replied
X-Autoreply: yes

I am out of the office until Monday.
"""
    report = parse_report(raw)
    assert report.kind == "autoreply"
    assert [(r.recipient, r.disposition) for r in report.recipients] == [("dave@example.org", "autoreply")]


def test_a_vacation_reply_recognised_by_its_subject_alone():
    report = parse_report(b"From: e@example.org\nTo: x@shop.example\nSubject: Out of Office: back soon\n\nAway.\n")
    assert report.kind == "autoreply"


def test_a_bounce_marked_auto_replied_is_still_a_bounce():
    raw = b"""From: Mail Delivery System <Mailer-Daemon@mx.example.org>
To: hello@shop.example
Subject: Mail delivery failed: returning message to sender
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  frank@example.org
    SMTP error from remote mail server after RCPT TO:<frank@example.org>:
    host mx.example.org [192.0.2.4]: 550 5.1.1 <frank@example.org>: Recipient address rejected: User unknown

------ This is a copy of the message, including all the headers. ------

Message-ID: <m1@mail.dispatch.test>
From: hello@shop.example
To: frank@example.org
Subject: hi

hi
"""
    report = parse_report(raw)
    assert report.kind == "dsn"
    assert [(r.recipient, r.status, r.disposition) for r in report.recipients] == [("frank@example.org", "5.1.1", "hard")]
    assert report.original_message_id == "m1@mail.dispatch.test"


def test_a_qmail_bounce_without_any_status_code():
    raw = b"""From: MAILER-DAEMON@mx.example.org
To: hello@shop.example
Subject: failure notice

Hi. This is the qmail-send program at mx.example.org.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<gina@example.org>:
Sorry, no mailbox here by that name. (#5.1.1)

--- Below this line is a copy of the message.

From: hello@shop.example
To: gina@example.org
"""
    (result,) = parse_report(raw).recipients
    assert (result.recipient, result.status, result.bounce_class, result.disposition) == (
        "gina@example.org", "5.1.1", "InvalidRecipient", "hard")


def test_ordinary_mail_is_not_a_bounce():
    report = parse_report(b"From: h@example.org\nTo: x@shop.example\nSubject: question\n\nDo you ship to Mars?\n")
    assert (report.kind, report.recipients) == ("not_bounce", [])


def test_garbage_never_raises_and_is_not_a_bounce():
    samples = [b"", b"\x00" * 1000, bytes(range(256)) * 50, b"Content-Type: multipart/report; boundary=x\n\n--x\n" * 500,
               b"From: MAILER-DAEMON@x\n\n" + b"<" * 100000, "Subject: \udcff".encode("utf-8", "surrogateescape")]
    for raw in samples:
        assert parse_report(raw).kind == "not_bounce"


def test_huge_and_deeply_nested_input_is_bounded():
    nested = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i) for i in range(2000))
    huge = b"From: MAILER-DAEMON@x\nSubject: Undelivered\n\n" + (b"user unknown a@b.example " * 400000)
    started = time.perf_counter()
    for raw in (nested, huge):
        parse_report(raw)
    assert time.perf_counter() - started < 5


def test_a_customer_reply_with_a_bounce_like_subject_is_not_a_bounce():
    raw = b"""From: Henry <henry@example.org>
To: b-1-aaaaaaaaaa@bounces.shop.example
Subject: Re: Delivery notification for your order

My neighbour ivy@example.org says the parcel was rejected, could not be delivered. Please resend.
"""
    assert parse_report(raw).kind == "not_bounce"
