"""Delivery test fixtures: a loopback MX (aiosmtpd sink) found through the test DNS server,
a verified signing domain with a real DKIM key, and queued messages."""
import datetime
import ssl
import uuid
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.utils import timezone

from tests.delivery.sink import SMTPSink

DEST = "dest.test"


@pytest.fixture(autouse=True)
def delivery_settings(settings):
    from sending.delivery import routing
    from sending.delivery.pool import pool

    settings.DISPATCH_DELIVERY_MODE = "mx"
    settings.DISPATCH_OUTBOUND_ALLOW_PRIVATE = True
    settings.DISPATCH_SMARTHOST = ""
    settings.DISPATCH_OUTBOUND_CONNECT_TIMEOUT = 2
    settings.DISPATCH_OUTBOUND_GREETING_TIMEOUT = 2
    settings.DISPATCH_OUTBOUND_COMMAND_TIMEOUT = 2
    settings.DISPATCH_OUTBOUND_DATA_INIT_TIMEOUT = 2
    settings.DISPATCH_OUTBOUND_DATA_BLOCK_TIMEOUT = 2
    settings.DISPATCH_OUTBOUND_DATA_END_TIMEOUT = 2
    settings.DISPATCH_DNS_TIMEOUT = 1
    routing.clear_cache()
    _clear_politeness()
    yield settings
    pool.close_all()
    routing.clear_cache()
    _clear_politeness()


def _clear_politeness():
    import os

    import redis

    from sending.delivery import politeness

    politeness._redis.reset()
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    for key in client.scan_iter("dispatch:delivery:*"):
        client.delete(key)


@pytest.fixture
def sink():
    from sending.delivery.pool import pool

    server = SMTPSink().start()
    yield server
    pool.close_all()  # QUIT while the sink still answers
    server.stop()


@pytest.fixture(scope="session")
def tls_context(tmp_path_factory):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sink.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


@pytest.fixture
def mx(dns_server, sink, settings):
    """dest.test's MX is the sink on 127.0.0.1."""
    settings.DISPATCH_OUTBOUND_SMTP_PORT = sink.port
    dns_server.add(DEST, "MX", "10 mx.dest.test.")
    dns_server.add("mx.dest.test", "A", "127.0.0.1")
    return sink


def make_signing_domain(tenant, name="example.com"):
    from domains.models import Domain
    from domains.services import domain_create

    domain = domain_create(tenant=tenant, name=name)
    Domain.objects.filter(pk=domain.pk).update(status=Domain.Status.VERIFIED, verified_at=timezone.now())
    domain.refresh_from_db()
    return domain


@pytest.fixture
def signing_domain(tenant):
    return make_signing_domain(tenant)


def make_message(tenant, to, *, sender="sender@example.com", subject="Hello", text="Hello there.\n.leading dot line\n", queued_at=None):
    """A queued message as the submission path stores it (prepared MIME, encrypted)."""
    from email.headerregistry import Address

    from dispatch_site import crypto
    from sending.addresses import domain_of
    from sending.mime import build_message, new_message_id
    from sending.models import Message, Recipient

    now = queued_at or timezone.now()
    message_id = new_message_id()
    local, _, domain = sender.partition("@")
    raw = build_message(
        sender=Address(addr_spec=sender), to=[Address(addr_spec=a) for a in to], cc=[], reply_to=[], subject=subject,
        html=None, text=text, attachments=[], headers=[], message_id=message_id, date=now,
    )
    message = Message(
        id=uuid.uuid4(), tenant=tenant, message_id=message_id, from_address=sender, from_header=sender, subject=subject,
        to_addresses=list(to), body_size_bytes=len(raw), queued_at=now, expires_at=now + timedelta(days=30),
    )
    message.body = crypto.encrypt(raw, message.body_associated_data)
    message.save(force_insert=True)
    recipients = Recipient.objects.bulk_create(
        Recipient(tenant=tenant, message=message, email=a, domain=domain_of(a), next_attempt_at=now, enqueued_at=now) for a in to
    )
    return message, recipients


@pytest.fixture
def queue_message(tenant, signing_domain):
    def make(*to, **kwargs):
        return make_message(tenant, list(to), **kwargs)

    return make

