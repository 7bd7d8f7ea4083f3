import os
import smtplib
import ssl
import stat
import time

import pytest

from django.core.exceptions import ImproperlyConfigured

from smtp_gateway.server import GatewayConfig, Listener, tls_context_for
from smtp_gateway.tls import ensure_certificate, server_context

pytestmark = pytest.mark.django_db


def features(reply):
    return [line[4:] for line in reply.split("\r\n")[1:]]


def test_ehlo_before_tls_offers_starttls_and_no_auth(raw_session, settings):
    session = raw_session(tls=False)
    assert session.greeting.startswith(f"220 {settings.DISPATCH_HOSTNAME} ")
    offered = features(session.command("EHLO client.test"))
    assert "STARTTLS" in offered
    assert not any(f.startswith("AUTH") for f in offered)
    for extension in (f"SIZE {settings.DISPATCH_MAX_MESSAGE_BYTES}", "8BITMIME", "SMTPUTF8", "PIPELINING",
                      "ENHANCEDSTATUSCODES"):
        assert extension in offered


def test_ehlo_after_starttls_offers_auth_plain_login_and_no_starttls(raw_session, client_tls):
    session = raw_session(tls=False)
    session.command("EHLO client.test")
    session.starttls(client_tls)
    offered = features(session.command("EHLO client.test"))
    assert "AUTH PLAIN LOGIN" in offered
    assert "STARTTLS" not in offered


def test_implicit_tls_port_offers_auth_and_no_starttls(gateway, client_tls):
    with smtplib.SMTP_SSL("127.0.0.1", gateway.tls_port, context=client_tls, timeout=10) as client:
        client.ehlo("client.test")
        assert client.has_extn("auth") and client.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        assert not client.has_extn("starttls")


def test_size_is_the_configured_limit(start_gateway, smtp_starttls, client_tls):
    gateway = start_gateway(max_message_bytes=12345)
    with smtplib.SMTP("127.0.0.1", gateway.starttls_port, timeout=10) as client:
        client.ehlo("client.test")
        assert client.esmtp_features["size"] == "12345"


def test_second_starttls_inside_tls_answers_554(raw_session, client_tls):
    session = raw_session(tls=False)
    session.command("EHLO client.test")
    session.starttls(client_tls)
    session.command("EHLO client.test")
    assert session.command("STARTTLS").startswith("554 5.5.1")
    assert session.command("NOOP").startswith("250")  # the session goes on, still encrypted


def test_starttls_on_the_implicit_tls_port_answers_554(raw_session):
    session = raw_session(tls=True)
    assert session.command("STARTTLS").startswith("554 5.5.1")


def test_commands_pipelined_behind_starttls_are_discarded(raw_session, client_tls):
    """CVE-2011-0411 class: plaintext injected after STARTTLS must never run inside TLS."""
    session = raw_session(tls=False)
    session.command("EHLO client.test")
    session.send(b"STARTTLS\r\nQUIT\r\n")
    assert session.reply().startswith("220")
    session.sock = client_tls.wrap_socket(session.sock, server_hostname="127.0.0.1")
    assert session.command("NOOP").startswith("250 2.0.0")  # not 221: the QUIT was dropped
    assert session.command("EHLO client.test").startswith("250")


def test_a_failed_tls_handshake_closes_only_that_session(gateway, raw_session):
    session = raw_session(tls=False)
    session.command("EHLO client.test")
    assert session.command("STARTTLS").startswith("220")
    session.send(b"this is not a TLS ClientHello\r\n" * 4)
    assert session.closed()
    assert raw_session(tls=True).command("NOOP").startswith("250")
    assert wait_until(lambda: gateway.sessions == 1)


def test_a_stalled_starttls_handshake_is_cut_off_and_forgotten(start_gateway, raw_session):
    gateway = start_gateway(idle_timeout=1)
    session = raw_session(tls=False)
    session.command("EHLO client.test")
    assert session.command("STARTTLS").startswith("220")
    started = time.monotonic()
    assert session.closed()  # no ClientHello ever sent
    assert time.monotonic() - started < 5
    assert wait_until(lambda: gateway.sessions == 0)


def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


def test_starttls_forgets_the_plaintext_ehlo(raw_session, client_tls):
    session = raw_session(tls=False)
    session.command("EHLO client.test")
    session.starttls(client_tls)
    assert session.command("MAIL FROM:<a@example.com>").startswith("503 5.5.1")


def test_replies_carry_enhanced_status_codes(raw_session):
    session = raw_session(tls=True)
    assert session.command("NOOP") == "250 2.0.0 OK"
    assert session.command("RSET") == "250 2.0.0 OK"
    assert session.command("VRFY postmaster").startswith("502 5.5.1")
    assert session.command("BOGUS").startswith("500 5.5.2")
    assert session.command("QUIT").startswith("221 2.0.0")


def test_development_certificate_is_generated_once_with_a_private_key(tmp_path):
    cert, key = tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"
    assert ensure_certificate(cert, key, hostname="mail.example.test") is True
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    first = cert.read_bytes()
    assert ensure_certificate(cert, key, hostname="mail.example.test") is False
    assert cert.read_bytes() == first
    assert isinstance(server_context(cert, key), ssl.SSLContext)


def test_half_a_certificate_pair_is_an_error_not_overwritten(tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("operator's certificate")
    with pytest.raises(FileNotFoundError):
        ensure_certificate(cert, tmp_path / "key.pem", hostname="mail.example.test")
    assert cert.read_text() == "operator's certificate"


def test_production_refuses_to_start_without_its_certificate(tmp_path, settings):
    settings.PRODUCTION = True
    config = GatewayConfig.from_settings(tls_cert=str(tmp_path / "cert.pem"), tls_key=str(tmp_path / "key.pem"))
    with pytest.raises(ImproperlyConfigured):
        tls_context_for(config)
    assert not (tmp_path / "cert.pem").exists()


def test_listeners_follow_the_settings(settings):
    settings.DISPATCH_SMTP_STARTTLS_PORTS = [2525, 587]
    settings.DISPATCH_SMTP_TLS_PORTS = [465]
    settings.DISPATCH_SMTP_INBOUND_PORT = 25
    assert GatewayConfig.from_settings().listeners == (
        Listener("submission", 2525), Listener("submission", 587), Listener("submission", 465, implicit_tls=True),
        Listener("inbound", 25),
    )


def test_a_role_without_an_implementation_opens_no_port(start_gateway):
    runner = start_gateway(listeners=(Listener("submission", 0), Listener("no-such-role", 0)))
    assert [bound.listener.role for bound in runner.gateway.bound] == ["submission"]
