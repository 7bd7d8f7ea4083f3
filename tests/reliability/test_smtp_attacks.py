"""SMTP attacks over raw sockets (issue 14, item 6) that tests/smtp_gateway/ does not already
cover. Already there and not repeated: smuggled end-of-DATA variants, commands pipelined behind
STARTTLS, a second STARTTLS, long DATA lines, declared and actual oversize, idle and dribbling
clients, the session cap, routing tricks / IP literals, unauthenticated relay, AUTH failures per
IP. Added here: AUTH failures per account across addresses, stalled TLS handshakes, dribbling
inside DATA, a 10 MB command line, more smuggling shapes, sending as another tenant, and the
inbound MX role as a relay."""
import resource
import socket
import time

import pytest

from sending.models import Message
from tests.smtp_gateway.conftest import RawSession, client_tls, raw_session, start_gateway, verified_domain  # noqa: F401
from tests.smtp_gateway.test_robustness import HEAD, SMUGGLED, open_transaction

pytestmark = pytest.mark.django_db


@pytest.fixture
def sender(tenant, credential, verified_domain):  # noqa: F811
    verified_domain(tenant, "example.com")
    return credential


def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_auth_failures_for_one_account_are_limited_across_source_addresses(start_gateway, raw_session, credential):  # noqa: F811
    """A distributed guesser (a new address for every try) must still hit a per-account limit:
    after it, even the right password is refused from an address that never logged in."""
    start_gateway(auth_failure_limit=3, auth_failure_limit_per_account=3)
    for number in range(6):
        session = raw_session(tls=True, source=f"127.0.1.{number + 1}")
        reply = session.command(f"AUTH PLAIN {b64_plain(credential.username, 'dp_sk_wrong')}")
        assert reply[:1] in ("4", "5"), reply
    reply = raw_session(tls=True, source="127.0.1.200").login(credential)
    assert not reply.startswith("235"), "the account was still open to guessing after 6 failures from 6 addresses"


def b64_plain(username, password):
    import base64

    return base64.b64encode(f"\0{username}\0{password}".encode()).decode()


@pytest.mark.parametrize("where", ["implicit TLS port", "after STARTTLS"])
def test_stalled_tls_handshakes_are_cut_off_and_free_their_session_slot(start_gateway, where):  # noqa: F811
    """Clients that open TLS and never send a ClientHello: each is disconnected after the idle
    timeout and its slot is given back, so they cannot fill the session cap and lock out others."""
    gateway = start_gateway(idle_timeout=1, max_sessions=3)
    stalled = []
    for _ in range(3):
        if where == "implicit TLS port":
            stalled.append(socket.create_connection(("127.0.0.1", gateway.tls_port), timeout=10))
        else:
            session = RawSession(gateway.starttls_port)
            session.command("EHLO client.test")
            assert session.command("STARTTLS").startswith("220")
            stalled.append(session.sock)
    started = time.monotonic()
    for sock in stalled:
        sock.settimeout(10)
        try:
            while sock.recv(4096):
                pass
        except (ConnectionResetError, socket.timeout):
            pass
    assert time.monotonic() - started < 5, "a stalled handshake was not cut off"
    time.sleep(1)
    newcomer = RawSession(gateway.starttls_port)
    assert newcomer.greeting.startswith("220"), f"turned away after the stalled clients left: {newcomer.greeting}"
    for sock in stalled:
        sock.close()


def test_bytes_dribbled_inside_data_without_a_line_end_are_cut_off(start_gateway, raw_session, sender):  # noqa: F811
    start_gateway(idle_timeout=1)
    session = raw_session(login=sender)
    open_transaction(session)
    session.send(HEAD)
    started = time.monotonic()
    try:
        for _ in range(10):  # a byte every 0.4 s, never a complete line
            session.send(b"x")
            time.sleep(0.4)
    except OSError:
        pass
    reply = session.reply()
    assert reply.startswith("421 4.4.2") or reply == "", reply
    assert time.monotonic() - started < 6
    assert not Message.objects.exists()


def test_a_10_mb_command_line_is_refused_without_buffering_it(start_gateway, raw_session, sender):  # noqa: F811
    gateway = start_gateway()
    session = raw_session(login=sender)
    line = b"MAIL FROM:<" + b"a" * (10 * 1024 * 1024) + b"@example.com>\r\n"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    try:
        session.send(line)
        reply = session.reply()
    except (ConnectionResetError, BrokenPipeError):
        reply = ""
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert reply == "" or reply[:1] == "5", reply
    assert grown < 64 * 1024 * 1024, f"peak RSS grew {grown / 1e6:.0f} MB"
    assert raw_session(login=sender).command("NOOP").startswith("250"), "the gateway must keep serving others"
    assert gateway.sessions <= 2


@pytest.mark.parametrize("fake_end", [b"\r\r\n.\r\r\n", b"\n\r.\n\r", b"\r\n.\r\r\n", b"\r\n.\x00\r\n", b"\r\n .\r\n\r\n"[:-2]])
def test_more_smuggling_shapes_never_end_data(raw_session, sender, fake_end):  # noqa: F811
    session = raw_session(login=sender)
    open_transaction(session)
    session.send(HEAD + b"hello" + fake_end + SMUGGLED + b".\r\n")
    first = session.reply()
    assert first.startswith(("550", "250")), first
    assert session.command("NOOP") == "250 2.0.0 OK", "a smuggled command was answered"
    subjects = list(Message.objects.values_list("subject", flat=True))
    assert "smuggled" not in subjects and len(subjects) <= 1
    if first.startswith("250"):  # accepted as one message: the smuggled part is body text
        assert Message.objects.get().recipients.count() == 1


def test_a_tenant_cannot_send_as_another_tenants_domain(raw_session, sender, make_tenant, verified_domain):  # noqa: F811
    other = make_tenant()
    verified_domain(other, "other-tenant.example")
    session = raw_session(login=sender)
    assert session.command("MAIL FROM:<ceo@other-tenant.example>")[:1] == "5"
    # Envelope on our own domain, header From on theirs: refused at the end of DATA.
    open_transaction(session)
    session.send(b"From: ceo@other-tenant.example\r\nTo: bob@example.net\r\nSubject: x\r\n\r\nx\r\n.\r\n")
    assert session.reply()[:1] == "5"
    assert not Message.objects.exists()


def test_the_inbound_mx_role_is_not_a_relay(start_gateway):  # noqa: F811
    from smtp_gateway.server import ROLES, Listener

    if "inbound" not in ROLES:
        pytest.skip("the gateway has no inbound MX role (DISPATCH_SMTP_INBOUND_PORT opens nothing)")
    gateway = start_gateway(listeners=(Listener("inbound", 0),))
    session = RawSession(gateway.gateway.port("inbound"))
    session.command("EHLO relay.test")
    assert session.command("MAIL FROM:<spammer@example.org>").startswith("250")
    for victim in ("victim@example.net", "postmaster@gmail.com", "user@[127.0.0.1]"):
        assert session.command(f"RCPT TO:<{victim}>")[:1] == "5"
    assert session.command("DATA")[:1] == "5"
