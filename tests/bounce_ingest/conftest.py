"""Fixtures for inbound report processing: tenants with verified domains, messages that were
delivered (recipient rows with their VERP return path), DSN / ARF builders, and the inbound MX
role of the SMTP gateway running on a free loopback port."""
import asyncio
import smtplib
import threading
from email.utils import make_msgid

import pytest
from django.utils import timezone

from sending.bounces import verp
from tests.delivery.conftest import make_message, make_signing_domain

DOMAIN = "shop.example"
OTHER_DOMAIN = "other.example"


@pytest.fixture
def shop(tenant):
    return make_signing_domain(tenant, DOMAIN)


@pytest.fixture
def other_shop(other_tenant):
    return make_signing_domain(other_tenant, OTHER_DOMAIN)


def delivered(tenant, *to, sender=f"news@{DOMAIN}"):
    """A message whose recipients were all delivered (a remote MX said 250), as before an
    asynchronous bounce."""
    from sending.models import Recipient
    from sending.services import message_refresh_status

    message, recipients = make_message(tenant, list(to), sender=sender)
    now = timezone.now()
    Recipient.objects.filter(message=message).update(status=Recipient.Status.DELIVERED, delivered_at=now, attempts=1)
    message_refresh_status(message_id=message.id)
    message.refresh_from_db()
    return message, [Recipient.objects.get(pk=r.pk) for r in recipients]


@pytest.fixture
def send(tenant, shop):
    def make(*to):
        return delivered(tenant, *to)

    return make


def return_path(recipient):
    domain = recipient.message.from_address.rpartition("@")[2]
    return verp.encode(recipient.id, f"bounces.{domain}")


def returned_headers(message, recipient, extra=""):
    return (f"Return-Path: <{return_path(recipient)}>\nMessage-ID: <{message.message_id}>\n"
            f"From: {message.from_address}\nTo: {recipient.email}\nSubject: {message.subject}\n{extra}")


def dsn(*, to, recipient_address, status="5.1.1", diagnostic="550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown",
        action="failed", headers="", message_id=None):
    """An RFC 3464 delivery status notification as a remote MTA sends it to our return path."""
    diagnostic = diagnostic.format(rcpt=recipient_address)
    return f"""From: MAILER-DAEMON@mx.remote.example (Mail Delivery System)
To: {to}
Subject: Undelivered Mail Returned to Sender
Message-ID: {message_id or make_msgid(domain="mx.remote.example")}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B0UNDARY"

--B0UNDARY
Content-Type: text/plain

This is the mail system at host mx.remote.example. Your message could not be delivered.

--B0UNDARY
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.remote.example

Final-Recipient: rfc822; {recipient_address}
Original-Recipient: rfc822;{recipient_address}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {diagnostic}

--B0UNDARY
Content-Type: text/rfc822-headers

{headers}
--B0UNDARY--
""".replace("\n", "\r\n").encode()


def arf(*, to, recipient_address, returned, feedback_type="abuse"):
    """An RFC 5965 feedback report (a mailbox provider's complaint feedback loop)."""
    return f"""From: feedback@fbl.provider.example
To: {to}
Subject: FW: complaint
Message-ID: {make_msgid(domain="fbl.provider.example")}
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="ARFB"

--ARFB
Content-Type: text/plain

This is an email abuse report for an email message received from IP 192.0.2.1.

--ARFB
Content-Type: message/feedback-report

Feedback-Type: {feedback_type}
User-Agent: SomeFBL/1.0
Version: 1
Original-Rcpt-To: {recipient_address}
Arrival-Date: Thu, 8 Mar 2026 14:00:00 EDT
Source-IP: 192.0.2.1

--ARFB
Content-Type: message/rfc822

{returned}
Hello.
--ARFB--
""".replace("\n", "\r\n").encode()


def ingest(envelope_to, raw, envelope_from=""):
    """Store a report as the inbound MX does and process it; returns the InboundReport."""
    from sending.bounces import ingest as service
    from sending.models import InboundReport

    [report_id] = service.reports_store(envelope_from=envelope_from, rcpt_tos=[envelope_to], raw=raw)
    service.report_process(report_id=report_id)
    return InboundReport.objects.get(pk=report_id)


def events(tenant, kind):
    from webhooks.models import Event

    return list(Event.objects.filter(tenant=tenant, type=kind))


# --- the inbound MX --------------------------------------------------------------------------------
class InboundGateway:
    """The SMTP gateway with only the inbound role, on its own event loop thread, bound to a free
    loopback port. Its database threads use their own connections: tests using it are
    transactional, so they see committed rows only — as in production."""

    def __init__(self):
        from smtp_gateway.server import Gateway, GatewayConfig, Listener

        config = GatewayConfig.from_settings(listeners=(Listener("inbound", 0),), bind="127.0.0.1", db_threads=2)
        self.gateway = Gateway(config)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="inbound-mx-test")

    def call(self, coroutine, timeout=30):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def start(self):
        self.thread.start()
        self.call(self.gateway.start())
        self.port = self.gateway.port("inbound")
        return self

    def stop(self):
        self.call(self.gateway.shutdown(2), timeout=40)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def inbound_mx(settings):
    runner = InboundGateway().start()
    yield runner
    runner.stop()


@pytest.fixture
def mx_client(inbound_mx):
    opened = []

    def connect():
        client = smtplib.SMTP("127.0.0.1", inbound_mx.port, timeout=10)
        client.ehlo("mx.remote.example")
        opened.append(client)
        return client

    yield connect
    for client in opened:
        try:
            client.close()
        except Exception:  # noqa: BLE001
            pass
