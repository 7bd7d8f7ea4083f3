import datetime

import pytest
from django.utils import timezone

from sending import events
from sending.models import DeliveryAttempt, InboundReport, Message, Recipient

from .conftest import make_verified_domain

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(tenant, send):
    make_verified_domain(tenant)
    return send(tenant, to=["alice@example.org", "bob@example.net"], tags=["welcome"]).message


def test_the_log_lists_and_filters_messages(browser, page, tenant, send, sent):
    other = send(tenant, to=["carol@example.org"], subject="Invoice 42", tags=["billing"]).message
    Message.objects.filter(pk=other.pk).update(status="delivered", queued_at=timezone.now() - datetime.timedelta(days=3))

    html = browser.get(page("emails")).content.decode()
    assert "Hello Alice" in html and "Invoice 42" in html

    def subjects(**query):
        return browser.get(page("emails"), query).content.decode()

    assert "Invoice 42" not in subjects(status="queued") and "Hello Alice" in subjects(status="queued")
    assert "Invoice 42" in subjects(recipient="CAROL@example.org") and "Hello Alice" not in subjects(recipient="carol@example.org")
    assert "Invoice 42" in subjects(tag="billing") and "Hello Alice" not in subjects(tag="billing")
    today = timezone.now().date()
    assert "Invoice 42" not in subjects(date_from=today.isoformat()) and "Hello Alice" in subjects(date_from=today.isoformat())
    assert "Invoice 42" in subjects(date_to=(today - datetime.timedelta(days=1)).isoformat())
    assert "Enter a valid date" in subjects(date_from="yesterday")


def test_the_detail_shows_sandboxed_html_text_headers_attempts_and_the_bounce_report(browser, page, tenant, sent):
    bob = sent.recipients.get(email="bob@example.net")
    DeliveryAttempt.objects.create(tenant=tenant, recipient=bob, mx_host="mx.example.net", remote_ip="192.0.2.7",
                                   response_code=550, enhanced_status="5.1.1", response_text="no such user",
                                   outcome="bounced", duration_ms=42)
    Recipient.objects.filter(pk=bob.pk).update(status="bounced", bounce_type="hard", bounce_class="bad-mailbox",
                                               last_response_code=550, last_enhanced_status="5.1.1",
                                               last_response_text="no such user")
    events.emit("bounced", recipient=bob, message=sent, tenant=tenant, bounce_type="hard",
                bounce_classification="bad-mailbox", diagnostic_code="smtp; 550 5.1.1 user unknown (from the DSN)")
    InboundReport.objects.create(
        tenant=tenant, message=sent, recipient=bob, kind="dsn", envelope_to="b+x@bounces.example.com", raw=b"",
        processed_at=timezone.now(), result={"kind": "dsn", "recipients": [{
            "recipient": "bob@example.net", "action": "failed", "status": "5.1.1", "bounce_class": "bad-mailbox",
            "disposition": "hard", "feedback_type": None, "outcome": "bounced (hard), suppressed"}]})

    html = browser.get(page(f"emails/{sent.id}")).content.decode()
    assert '<iframe class="preview" sandbox=""' in html
    srcdoc = html.split('srcdoc="', 1)[1].split('"', 1)[0]
    assert srcdoc.startswith("&lt;meta http-equiv=&quot;Content-Security-Policy&quot;")
    assert "&lt;script&gt;" in srcdoc and "<script>" not in html.split("</main>")[0].split("<main")[1]
    assert "<pre>Hi Alice" in html  # the text part
    assert "DKIM-Signature" not in html and "Message-ID" in html  # headers of the stored message
    assert "mx.example.net" in html and "no such user" in html and "bad-mailbox" in html
    assert "user unknown (from the DSN)" in html  # the bounce report event
    assert "Reports received" in html and "bounced (hard), suppressed" in html  # the DSN that came back


def test_erasing_the_body_keeps_the_record(browser, page, sent):
    r = browser.post(page(f"emails/{sent.id}/erase"), follow=True)
    sent.refresh_from_db()
    assert sent.body is None and sent.body_erased_at is not None
    assert b"The body was erased" in r.content and b"alice@example.org" in r.content


def test_another_tenants_message_is_not_found(browser, page, other_tenant, send):
    make_verified_domain(other_tenant, "other.example")
    foreign = send(other_tenant, from_="x@other.example", subject="Secret subject").message
    assert browser.get(page(f"emails/{foreign.id}")).status_code == 404
    assert browser.post(page(f"emails/{foreign.id}/erase")).status_code == 404
    assert b"Secret subject" not in browser.get(page("emails")).content
    foreign.refresh_from_db()
    assert foreign.body is not None
