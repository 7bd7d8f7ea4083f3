"""End to end with real components: the delivery engine sends to a loopback MX found through the
test DNS server; its refusals, a DSN for an accepted message mailed back to the inbound MX at the
VERP return path, and the one-click link of the delivered copy all end in the right rows."""
import asyncio
import re
import smtplib
import socket
import threading
from email import message_from_bytes

import pytest
from aiosmtpd.smtp import SMTP
from django.test import Client

from sending.bounces import verp
from sending.bounces.tasks import process_inbound_report
from sending.delivery import engine
from sending.models import InboundReport, Recipient, Suppression
from tests.bounce_ingest.conftest import DOMAIN, dsn, events
from tests.delivery.conftest import delivery_settings, make_message  # noqa: F401 - autouse fixture reused

DEST = "dest.test"


class _Replies:
    """RCPT replies by local part: unknown* -> 550 5.1.1, blocked* -> 550 5.7.1 (a reputation
    block, as Spamhaus-listed senders get), anything else accepted and kept."""

    def __init__(self, received):
        self.received = received

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0].lower()
        if local.startswith("unknown"):
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown in virtual mailbox table" % address
        if local.startswith("blocked"):
            return "550 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 2.0.0 queued"


class SinkMX:
    def __init__(self):
        self.received = []
        self.loop = asyncio.new_event_loop()

    def start(self):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        handler = _Replies(self.received)
        self.server = self.loop.run_until_complete(self.loop.create_server(lambda: SMTP(handler, hostname="mx.dest.test"), sock=sock))
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def mx(dns_server, settings):
    from sending.delivery.pool import pool

    sink = SinkMX().start()
    settings.DISPATCH_OUTBOUND_SMTP_PORT = sink.port
    dns_server.add(DEST, "MX", "10 mx.dest.test.")
    dns_server.add("mx.dest.test", "A", "127.0.0.1")
    yield sink
    pool.close_all()
    sink.stop()


@pytest.fixture
def queue(tenant, shop):
    def make(*to):
        return make_message(tenant, list(to), sender=f"news@{DOMAIN}")

    return make


@pytest.mark.django_db
def test_a_550_5_1_1_from_the_mx_suppresses_and_a_550_5_7_1_block_does_not(mx, tenant, queue):
    message, [unknown, blocked, fine] = queue(f"unknown@{DEST}", f"blocked@{DEST}", f"fine@{DEST}")

    engine.deliver([unknown.id, blocked.id, fine.id])

    unknown, blocked, fine = (Recipient.objects.get(pk=r.pk) for r in (unknown, blocked, fine))
    assert (unknown.status, unknown.bounce_type, unknown.bounce_class) == ("bounced", "hard", "InvalidRecipient")
    assert (blocked.status, blocked.bounce_type, blocked.bounce_class) == ("bounced", "soft", "SpamBlock")
    assert fine.status == "delivered"
    assert list(Suppression.objects.for_tenant(tenant).values_list("email", "source")) == [(f"unknown@{DEST}", "bounce")]
    assert sorted(e.payload["bounce_type"] for e in events(tenant, "bounced")) == ["hard", "soft"]


@pytest.mark.django_db(transaction=True)
def test_a_dsn_for_an_accepted_message_mailed_to_its_return_path_bounces_and_suppresses(mx, inbound_mx, tenant, queue):
    message, [rcpt] = queue(f"gone@{DEST}")
    engine.deliver([rcpt.id])
    [(mail_from, rcpt_tos, data)] = mx.received
    assert Recipient.objects.get(pk=rcpt.pk).status == "delivered"
    assert verp.decode(mail_from) == rcpt.id and mail_from.endswith(f"@bounces.{DOMAIN}")

    # Later the destination finds the mailbox gone and returns the message to the envelope sender.
    headers = data.split(b"\r\n\r\n", 1)[0].decode().replace("\r\n", "\n")
    report = dsn(to=mail_from, recipient_address=f"gone@{DEST}", headers=headers,
                 diagnostic="550 5.1.1 The email account that you tried to reach does not exist.")
    with smtplib.SMTP("127.0.0.1", inbound_mx.port, timeout=10) as client:
        assert client.sendmail("", [mail_from], report) == {}
    [stored] = InboundReport.objects.all()
    process_inbound_report(str(stored.id))

    rcpt.refresh_from_db()
    assert (rcpt.status, rcpt.bounce_type, rcpt.bounce_class) == ("bounced", "hard", "InvalidRecipient")
    [entry] = Suppression.objects.for_tenant(tenant)
    assert (entry.email, entry.source, entry.source_message_id) == (f"gone@{DEST}", "bounce", message.id)
    assert [e.payload["bounce_type"] for e in events(tenant, "bounced")] == ["hard"]
    stored.refresh_from_db()
    assert (stored.kind, stored.recipient_id) == ("dsn", rcpt.id)


@pytest.mark.django_db
def test_the_one_click_link_of_the_delivered_copy_unsubscribes(mx, tenant, queue, settings):
    message, [rcpt] = queue(f"reader@{DEST}")
    engine.deliver([rcpt.id])
    [(_, _, data)] = mx.received
    delivered = message_from_bytes(data)
    assert delivered["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = re.fullmatch(r"<(.+)>", delivered["List-Unsubscribe"]).group(1)
    assert url.startswith(settings.DISPATCH_PUBLIC_URL + "/u/")

    response = Client(enforce_csrf_checks=True).post(
        url[len(settings.DISPATCH_PUBLIC_URL):], "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 200
    assert Suppression.objects.for_tenant(tenant).get().source == "unsubscribe"
    assert [e.payload["recipient"] for e in events(tenant, "unsubscribed")] == [f"reader@{DEST}"]
