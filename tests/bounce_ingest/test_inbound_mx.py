"""The inbound MX role over real SMTP on loopback: what it accepts, what it refuses, and reports
mailed to it ending up processed."""
import base64
import json
import os
import signal
import smtplib
import subprocess
import sys

import pytest
import redis

from sending.bounces import ingest as service
from sending.bounces import tasks, verp
from sending.models import InboundReport, Recipient, Suppression
from tests.bounce_ingest.conftest import DOMAIN, OTHER_DOMAIN, arf, dsn, events, return_path, returned_headers

pytestmark = pytest.mark.django_db(transaction=True)


def queued_report_tasks():
    """Report ids of processing tasks waiting in the broker's "default" queue."""
    broker = redis.Redis.from_url(os.environ["REDIS_URL"])
    ids = []
    for raw in broker.lrange("default", 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] == service.PROCESS_TASK:
            ids.append(json.loads(base64.b64decode(message["body"]))[0][0])
    return ids


@pytest.fixture(autouse=True)
def empty_default_queue():
    redis.Redis.from_url(os.environ["REDIS_URL"]).delete("default")


def refusal(client, address, sender=""):
    client.rset()
    client.mail(sender)
    return client.rcpt(address)


def test_a_dsn_mailed_to_the_verp_return_path_is_stored_queued_and_bounces_the_recipient(mx_client, tenant, send):
    message, [alice] = send("alice@dest.example")
    address = return_path(alice)

    refused = mx_client().sendmail("", [address], dsn(to=address, recipient_address="alice@dest.example",
                                                      headers=returned_headers(message, alice)))

    assert refused == {}
    [report] = InboundReport.objects.all()  # committed before the 250
    assert report.envelope_to == address and report.envelope_from == "" and report.remote_ip == "127.0.0.1"
    assert report.processed_at is None
    assert _wait_for_task(report.id)

    tasks.process_inbound_report(str(report.id))  # what the worker runs

    alice.refresh_from_db()
    assert (alice.status, alice.bounce_type) == ("bounced", "hard")
    assert Suppression.objects.filter(tenant=tenant, email="alice@dest.example", source="bounce").exists()
    assert len(events(tenant, "bounced")) == 1


def _wait_for_task(report_id):
    import time

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if str(report_id) in queued_report_tasks():
            return True
        time.sleep(0.05)
    return False


def test_an_arf_report_mailed_to_the_feedback_address_is_a_complaint(mx_client, tenant, send):
    message, [bob] = send("bob@dest.example")
    fbl = verp.feedback_address(f"bounces.{DOMAIN}")

    assert mx_client().sendmail("feedback@fbl.provider.example", [fbl],
                                arf(to=fbl, recipient_address="bob@dest.example", returned=returned_headers(message, bob))) == {}
    [report] = InboundReport.objects.all()
    tasks.process_inbound_report(str(report.id))

    assert Suppression.objects.get(tenant=tenant, email="bob@dest.example").source == "complaint"
    assert [e.payload["recipient"] for e in events(tenant, "complained")] == ["bob@dest.example"]


def test_everything_but_our_return_path_and_feedback_addresses_is_refused(mx_client, tenant, send, other_shop):
    message, [rcpt] = send("carol@dest.example")
    good = return_path(rcpt)
    local, _, domain = good.partition("@")
    client = mx_client()
    refused = [
        "postmaster@" + domain,                                   # not a VERP address
        f"{local[:-1]}{'a' if local[-1] != 'a' else 'b'}@{domain}",  # tampered tag
        verp.encode(rcpt.id + 1, domain),                         # a recipient that does not exist
        verp.encode(rcpt.id, domain, secret="another key"),       # signed with another key
        verp.encode(rcpt.id, f"bounces.{OTHER_DOMAIN}"),           # valid tag, another tenant's domain
        verp.encode(rcpt.id, "bounces.unrelated.example"),
        "fbl@bounces.unknown.example",                            # feedback address of no known domain
        f"fbl@{DOMAIN}",                                          # not the return-path domain
        "someone@gmail.com",                                      # relaying
        "carol@dest.example",
    ]
    for address in refused:
        code, text = refusal(client, address)
        assert (code, text[:5]) == (550, b"5.7.1"), address

    assert refusal(client, good)[0] == 250
    assert refusal(client, f"fbl@bounces.{DOMAIN}")[0] == 250
    assert refusal(client, f"fbl@bounces.{OTHER_DOMAIN}")[0] == 250
    assert InboundReport.objects.count() == 0


def test_a_relay_attempt_delivers_nothing(mx_client, tenant, send):
    client = mx_client()
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        client.sendmail("spammer@example.net", ["victim@example.org"], b"Subject: hi\r\n\r\nbuy now\r\n")
    assert InboundReport.objects.count() == 0


def test_no_auth_is_offered_and_the_null_sender_is_accepted(mx_client):
    client = mx_client()
    assert not client.has_extn("auth")
    assert client.docmd("AUTH", "PLAIN AHVzZXIAcGFzcw==")[0] == 502
    assert client.mail("")[0] == 250


def test_one_report_row_per_accepted_recipient(mx_client, tenant, send):
    message, [one, two] = send("one@dest.example", "two@dest.example")

    mx_client().sendmail("", [return_path(one), return_path(two)], dsn(to=return_path(one), recipient_address="one@dest.example"))

    assert sorted(r.envelope_to for r in InboundReport.objects.all()) == sorted([return_path(one), return_path(two)])


def test_the_smtp_gateway_command_serves_the_inbound_role_on_its_port(tenant, send):
    """`manage.py smtp_gateway` as a real process with DISPATCH_SMTP_INBOUND_PORT set."""
    from tests.smtp_gateway.test_shutdown import BASE_DIR, database_url, free_port, wait_for_port

    message, [rcpt] = send("eve@dest.example")
    port = free_port()
    env = dict(os.environ, DATABASE_URL=database_url(), DISPATCH_SMTP_BIND="127.0.0.1",
               DISPATCH_SMTP_STARTTLS_PORTS=str(free_port()), DISPATCH_SMTP_INBOUND_PORT=str(port))
    proc = subprocess.Popen([sys.executable, "manage.py", "smtp_gateway"], cwd=BASE_DIR, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port(port, proc)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.ehlo("mx.remote.example")
            assert not client.has_extn("auth")
            assert client.sendmail("", [return_path(rcpt)], dsn(to=return_path(rcpt), recipient_address=rcpt.email)) == {}
            assert refusal(client, "victim@example.org")[0] == 550
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    [report] = InboundReport.objects.all()
    assert report.envelope_to == return_path(rcpt)


def test_recipient_rows_are_untouched_by_refused_mail(mx_client, tenant, send):
    message, [rcpt] = send("dan@dest.example")
    client = mx_client()
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        client.sendmail("", ["postmaster@bounces." + DOMAIN], dsn(to="x", recipient_address="dan@dest.example",
                                                                  headers=returned_headers(message, rcpt)))
    assert Recipient.objects.get(pk=rcpt.pk).status == "delivered"
