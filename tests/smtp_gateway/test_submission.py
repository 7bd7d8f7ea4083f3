"""DATA through the gateway into `sending.services.submit_raw`, checked in the database."""
import shutil
import smtplib
import subprocess

import pytest
from django.db import OperationalError

from dispatch_site import crypto
from dispatch_site.errors import QuotaExceeded, RateLimited
from sending.models import Message, Recipient
from sending.suppressions import suppression_add
from tenants.models import Plan

pytestmark = pytest.mark.django_db

INTACT = (
    b"From: Alice Example <alice@example.com>\r\n"
    b"To: Bob <bob@example.net>\r\n"
    b"Cc: carol@example.org\r\n"
    b"Reply-To: replies@example.com\r\n"
    b"Subject: =?utf-8?q?Caf=C3=A9_order?=\r\n"
    b"Message-ID: <thread-2@example.com>\r\n"
    b"In-Reply-To: <thread-1@example.com>\r\n"
    b"References: <thread-0@example.com>\r\n"
    b"\t<thread-1@example.com>\r\n"
    b"List-Unsubscribe: <mailto:unsubscribe@example.com>, <https://example.com/u/1>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    b"X-Custom: kept as sent\r\n"
    b"Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Caf\xc3\xa9 \xe2\x80\x94 8-bit body\r\n"
    b".a line that starts with a dot\r\n"
    b"..and one with two\r\n"
    + b"x" * 998 + b"\r\n"
    b"\r\n"
    b"last line\r\n"
)


def simple_message(subject="Hello", sender="alice@example.com", to="bob@example.net", extra=b""):
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n".encode() + extra + b"\r\nHello there.\r\n"
    )


def stored_body(message):
    return crypto.decrypt(message.body, message.body_associated_data)


def test_message_is_stored_byte_for_byte_with_every_header(smtp_starttls, sender):
    client = smtp_starttls(login=sender)
    refused = client.sendmail(
        "alice@example.com", ["bob@example.net", "carol@example.org", "dave@example.org"], INTACT,
        mail_options=["BODY=8BITMIME"],
    )
    assert refused == {}
    message = Message.objects.get()
    assert stored_body(message) == INTACT
    assert message.source == "smtp" and message.credential_id == sender.pk
    kinds = dict(Recipient.objects.filter(message=message).values_list("email", "kind"))
    assert kinds == {"bob@example.net": "to", "carol@example.org": "cc", "dave@example.org": "bcc"}
    assert message.bcc_count == 1


@pytest.mark.django_db(transaction=True)
def test_250_names_the_queued_message_and_comes_after_commit(smtp_starttls, sender):
    client = smtp_starttls(login=sender)
    client.mail("alice@example.com")
    client.rcpt("bob@example.net")
    code, text = client.data(simple_message())
    assert code == 250 and text.startswith(b"2.0.0 OK queued as <")
    # Visible from another connection the moment the client has its 250: committed.
    message = Message.objects.get()
    assert text.decode().endswith(f"<{message.message_id}>")


def test_missing_message_id_and_date_are_added_and_the_rest_kept(smtp_starttls, sender):
    raw = simple_message(extra=b"X-Thing: 1\r\n")
    smtp_starttls(login=sender).sendmail("alice@example.com", ["bob@example.net"], raw)
    stored = stored_body(Message.objects.get())
    head, _, body = stored.partition(b"\r\n\r\n")
    assert body == b"Hello there.\r\n"
    assert b"\r\nMessage-ID: <" in b"\r\n" + head and b"\r\nDate: " in b"\r\n" + head
    assert stored.endswith(raw)


def test_x_dispatch_headers_become_tags_and_metadata_and_are_removed(smtp_starttls, sender):
    raw = simple_message(extra=b'X-Dispatch-Tags: welcome, beta\r\nX-Dispatch-Metadata: {"user_id": "42"}\r\n')
    smtp_starttls(login=sender).sendmail("alice@example.com", ["bob@example.net"], raw)
    message = Message.objects.get()
    assert message.tags == ["welcome", "beta"] and message.metadata == {"user_id": "42"}
    assert b"X-Dispatch" not in stored_body(message)


def test_x_dispatch_template_renders_the_template_with_variables(smtp_starttls, sender, tenant):
    from templates_app.services import template_create

    template_create(tenant=tenant, name="Welcome", slug="welcome", subject="Hi {{name}}",
                    text_body="Welcome aboard, {{name}}!")
    raw = simple_message(extra=b'X-Dispatch-Template: welcome\r\nX-Dispatch-Template-Variables: {"name": "Ann"}\r\n')
    smtp_starttls(login=sender).sendmail("alice@example.com", ["bob@example.net"], raw)
    message = Message.objects.get()
    assert message.subject == "Hi Ann"
    stored = stored_body(message)
    assert b"Welcome aboard, Ann!" in stored and b"Hello there." not in stored
    assert b"X-Dispatch" not in stored


def test_header_from_on_an_unverified_domain_is_refused_at_data(smtp_starttls, sender):
    client = smtp_starttls(login=sender)
    client.mail("alice@example.com")
    client.rcpt("bob@example.net")
    code, text = client.data(simple_message(sender="mallory@unverified.example"))
    assert (code, text[:5]) == (550, b"5.7.1")
    assert not Message.objects.exists()


def test_a_sender_header_on_an_unverified_domain_is_refused_at_data(smtp_starttls, sender):
    # Receivers show Sender next to From ("on behalf of", "via"): it follows From's rule.
    client = smtp_starttls(login=sender)
    client.mail("alice@example.com")
    client.rcpt("bob@example.net")
    code, text = client.data(simple_message(extra=b"Sender: CEO <ceo@unverified.example>\r\n"))
    assert (code, text[:5]) == (550, b"5.7.1")
    assert not Message.objects.exists()
    client.rset()
    client.mail("alice@example.com")
    client.rcpt("bob@example.net")
    assert client.data(simple_message(extra=b"Sender: Ops <ops@example.com>\r\n"))[0] == 250
    assert Message.objects.count() == 1


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b"To: bob@example.net\r\nSubject: no sender\r\n\r\nbody\r\n", (553, b"5.1.3")),
        (simple_message(extra=b"From: second@example.com\r\n"), (553, b"5.1.3")),
        (simple_message(extra=b"X-Dispatch-Metadata: {not json\r\n"), (550, b"5.6.0")),
        # The email package itself raises IndexError on this Cc: answered for this message alone.
        (simple_message(extra=b"Cc: broken <\r\n"), (550, b"5.6.0")),
        # A second From that our parser skips but receivers read (obsolete syntax allows white
        # space before the colon; a first line "From " is an mbox separator to the email package):
        # the verified From would not be the one shown.
        (simple_message(extra=b"From : CEO <ceo@victim.example>\r\n"), (550, b"5.6.0")),
        (b"From : CEO <ceo@victim.example>\r\n" + simple_message(), (550, b"5.6.0")),
        (simple_message(extra=b"From\t: ceo@victim.example\r\n"), (550, b"5.6.0")),
        (simple_message(extra=b"not a header line\r\nFrom: ceo@victim.example\r\n"), (550, b"5.6.0")),
        # The email package reads alice@example.com here, many receivers ceo@victim.example.
        (simple_message(sender="alice@example.com <ceo@victim.example>"), (553, b"5.1.3")),
    ],
)
def test_malformed_messages_are_refused_at_data(smtp_starttls, sender, raw, expected):
    client = smtp_starttls(login=sender)
    client.mail("alice@example.com")
    client.rcpt("bob@example.net")
    code, text = client.data(raw)
    assert (code, text[:5]) == expected
    assert not Message.objects.exists()


def test_mail_from_on_an_unverified_domain_is_refused_at_mail(smtp_starttls, sender):
    code, text = smtp_starttls(login=sender).mail("alice@unverified.example")
    assert (code, text[:5]) == (550, b"5.7.1")


def test_mixed_recipients_are_answered_one_by_one(smtp_starttls, sender, tenant):
    suppression_add(tenant=tenant, email="gone@example.net", reason="hard bounce")
    client = smtp_starttls(login=sender)
    client.mail("alice@example.com")
    assert client.rcpt("bob@example.net")[0] == 250
    code, text = client.rcpt("gone@example.net")
    assert (code, text[:5]) == (550, b"5.1.1")
    assert client.rcpt("user@[127.0.0.1]")[0] == 553
    assert client.rcpt("carol@example.org")[0] == 250
    assert client.data(simple_message())[0] == 250
    emails = set(Recipient.objects.values_list("email", flat=True))
    assert emails == {"bob@example.net", "carol@example.org"}


def test_too_many_recipients_answers_452(start_gateway, smtp_starttls, sender):
    start_gateway(max_recipients=2)
    client = smtp_starttls(login=sender)
    client.mail("alice@example.com")
    assert client.rcpt("a@example.net")[0] == 250
    assert client.rcpt("b@example.net")[0] == 250
    code, text = client.rcpt("c@example.net")
    assert (code, text[:5]) == (452, b"4.5.3")
    assert client.data(simple_message())[0] == 250  # the accepted two are sent
    assert Recipient.objects.count() == 2


def test_over_quota_answers_552(smtp_starttls, sender, tenant):
    Plan.objects.filter(pk=tenant.plan_id).update(monthly_quota=1)
    client = smtp_starttls(login=sender)
    client.mail("alice@example.com")
    client.rcpt("a@example.net")
    client.rcpt("b@example.net")
    code, text = client.data(simple_message())
    assert (code, text[:5]) == (552, b"5.3.4")
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    "error, expected",
    [
        (RateLimited(), (451, b"4.7.1")),
        (QuotaExceeded(), (552, b"5.3.4")),
        (OperationalError("connection refused"), (451, b"4.3.0")),
    ],
)
def test_service_errors_map_to_replies(smtp_starttls, sender, monkeypatch, error, expected):
    def refuse(**kwargs):
        raise error

    monkeypatch.setattr("smtp_gateway.handlers.submit_raw_many", refuse)
    client = smtp_starttls(login=sender)
    client.mail("alice@example.com")
    client.rcpt("bob@example.net")
    code, text = client.data(simple_message())
    assert (code, text[:5]) == expected
    assert client.noop()[0] == 250  # the session survives


def test_smtps_submission_works(gateway, client_tls, sender):
    with smtplib.SMTP_SSL("127.0.0.1", gateway.tls_port, context=client_tls, timeout=10) as client:
        client.login(sender.username, sender.password)
        assert client.sendmail("alice@example.com", ["bob@example.net"], simple_message()) == {}
    assert Message.objects.count() == 1


def test_several_messages_in_one_session(smtp_starttls, sender):
    client = smtp_starttls(login=sender)
    for number in range(3):
        client.sendmail("alice@example.com", ["bob@example.net"], simple_message(subject=f"n{number}"))
    assert sorted(Message.objects.values_list("subject", flat=True)) == ["n0", "n1", "n2"]


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed")
def test_swaks_submits_over_starttls_with_auth_login(gateway, sender):
    result = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{gateway.starttls_port}", "--tls", "--auth", "LOGIN",
         "--auth-user", sender.username, "--auth-password", sender.password,
         "--from", "alice@example.com", "--to", "bob@example.net",
         "--header", "Subject: via swaks", "--body", "hello from swaks", "--timeout", "10"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert Message.objects.get().subject == "via swaks"
