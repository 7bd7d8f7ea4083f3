"""Hostile and broken clients, over raw sockets where smtplib would tidy the bytes up."""
import socket
import threading
import time

import pytest

from sending.models import Message
from smtp_gateway.addresses import AddressRefused, check_address, parse_path

from .test_submission import simple_message

pytestmark = pytest.mark.django_db

HEAD = b"From: alice@example.com\r\nTo: bob@example.net\r\nSubject: first\r\n\r\n"
SMUGGLED = (
    b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\n"
    b"From: alice@example.com\r\nTo: victim@example.net\r\nSubject: smuggled\r\n\r\nevil\r\n"
)


def open_transaction(session, recipients=("bob@example.net",)):
    assert session.command("MAIL FROM:<alice@example.com>").startswith("250")
    for recipient in recipients:
        assert session.command(f"RCPT TO:<{recipient}>").startswith("250")
    assert session.command("DATA").startswith("354")


@pytest.mark.parametrize("fake_end", [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r.\r\n", b"\r\n.\r"])
def test_smuggled_end_of_data_does_not_end_data(raw_session, sender, fake_end):
    """CVE-2023-51764 class: only <CRLF>.<CRLF> ends DATA; the rest is one refused message."""
    session = raw_session(login=sender)
    open_transaction(session)
    session.send(HEAD + b"hello" + fake_end + SMUGGLED + b".\r\n")
    assert session.reply().startswith("550 5.6.0")
    # No second reply is pending: the next reply answers our NOOP, not a smuggled command.
    assert session.command("NOOP") == "250 2.0.0 OK"
    assert not Message.objects.exists()


def test_a_clean_message_after_a_refused_one_is_accepted(raw_session, sender):
    session = raw_session(login=sender)
    open_transaction(session)
    session.send(HEAD + b"bare\nLF\r\n.\r\n")
    assert session.reply().startswith("550 5.6.0")
    open_transaction(session)
    session.send(HEAD + b"fine\r\n.\r\n")
    assert session.reply().startswith("250 2.0.0")
    assert Message.objects.get().subject == "first"


def test_nul_byte_in_data_is_refused(raw_session, sender):
    session = raw_session(login=sender)
    open_transaction(session)
    session.send(HEAD + b"nul\x00byte\r\n.\r\n")
    assert session.reply().startswith("550 5.6.0")
    assert not Message.objects.exists()


def test_line_over_1000_octets_is_refused_and_the_session_continues(raw_session, sender):
    session = raw_session(login=sender)
    open_transaction(session)
    session.send(HEAD + b"y" * 999 + b"\r\n.\r\n")  # 999 + CRLF = 1,001 octets
    assert session.reply().startswith("500 5.5.2")
    assert session.command("NOOP").startswith("250")
    assert not Message.objects.exists()


def test_very_long_line_is_refused_without_ending_data_early(raw_session, sender):
    session = raw_session(login=sender)
    open_transaction(session)
    session.send(HEAD + b"z" * 100_000 + b"\r\nstill message text\r\n.\r\n")
    assert session.reply().startswith("500 5.5.2")
    assert session.command("NOOP") == "250 2.0.0 OK"  # exactly one reply for the whole DATA


def test_declared_size_over_the_limit_is_refused_at_mail(start_gateway, raw_session, sender):
    start_gateway(max_message_bytes=4096)
    session = raw_session(login=sender)
    assert session.command("MAIL FROM:<alice@example.com> SIZE=5000").startswith("552 5.3.4")


def test_message_over_size_is_refused_with_552(start_gateway, raw_session, sender):
    start_gateway(max_message_bytes=4096)
    session = raw_session(login=sender)
    open_transaction(session)
    session.send(HEAD + (b"a" * 78 + b"\r\n") * 100 + b".\r\n")
    assert session.reply().startswith("552 5.3.4")
    assert session.command("NOOP").startswith("250")
    assert not Message.objects.exists()


def test_data_over_the_process_memory_budget_answers_452(start_gateway, raw_session, sender):
    gateway = start_gateway(data_buffer_limit=4000)
    session = raw_session(login=sender)
    open_transaction(session)
    session.send(HEAD + (b"b" * 98 + b"\r\n") * 50 + b".\r\n")
    assert session.reply().startswith("452 4.3.1")
    assert gateway.gateway.buffered_bytes == 0
    open_transaction(session)
    session.send(HEAD + b"small\r\n.\r\n")
    assert session.reply().startswith("250")
    assert gateway.gateway.buffered_bytes == 0


def test_invalid_utf8_and_non_ascii_addresses(raw_session, sender):
    session = raw_session(login=sender)
    assert session.command(b"MAIL FROM:<al\xffice@example.com> SMTPUTF8").startswith("553 5.1.3")
    assert session.command("MAIL FROM:<alïce@example.com>").startswith("553 5.6.7")  # no SMTPUTF8
    assert session.command(b"\xff\xfe").startswith("500")
    assert session.command("MAIL FROM:<alice@example.com>").startswith("250")
    assert session.command("RCPT TO:<jos\u00e9@example.net>").startswith("553 5.6.7")


def test_invalid_utf8_in_the_body_is_kept_as_opaque_8bit(raw_session, sender):
    session = raw_session(login=sender)
    open_transaction(session)
    session.send(HEAD + b"broken \xff\xfe utf-8\r\n.\r\n")
    assert session.reply().startswith("250 2.0.0")


@pytest.mark.parametrize(
    "path, reply",
    [
        ("<@relay.example:victim@example.net>", "553 5.1.3"),
        ("<victim%example.net@example.org>", "553 5.1.3"),
        ("<example.net!victim@example.org>", "553 5.1.3"),
        ("<victim@[127.0.0.1]>", "553 5.1.3"),
        ("<victim@127.0.0.1>", "553 5.1.3"),
        ("<victim@localhost>", "553 5.1.3"),
        ("<" + "v" * 65 + "@example.net>", "553 5.1.3"),
        ("<v@" + "a" * 250 + ".net>", "553 5.1.3"),
        ('<"quoted victim"@example.net>', "553 5.1.3"),
        ("<victim@example.net> NOTIFY=NEVER", "555 5.5.4"),
        ("<>", "553 5.1.3"),
    ],
)
def test_routing_tricks_and_bad_recipients_are_refused(raw_session, sender, path, reply):
    session = raw_session(login=sender)
    assert session.command("MAIL FROM:<alice@example.com>").startswith("250")
    assert session.command(f"RCPT TO:{path}").startswith(reply)


def test_null_sender_is_refused_for_submission(raw_session, sender):
    assert raw_session(login=sender).command("MAIL FROM:<>").startswith("553 5.1.7")


def test_unauthenticated_client_cannot_relay(raw_session):
    """Never an open relay: no AUTH, no transaction, on either port."""
    for session in (raw_session(tls=True), raw_session(tls=False)):
        session.command("EHLO relay.test")
        assert session.command("MAIL FROM:<spammer@example.org>").startswith("530 5.7.0")
        assert session.command("RCPT TO:<victim@example.net>").startswith("530 5.7.0")
        assert session.command("DATA").startswith("530 5.7.0")


def test_idle_client_is_disconnected_with_421(start_gateway, raw_session):
    start_gateway(idle_timeout=1)
    session = raw_session(tls=False)
    started = time.monotonic()
    assert session.reply().startswith("421 4.4.2")
    assert session.closed()
    assert 0.8 < time.monotonic() - started < 5


def test_slow_client_dribbling_a_command_is_disconnected(start_gateway, raw_session):
    start_gateway(idle_timeout=1)
    session = raw_session(tls=False)
    session.send(b"EHLO ")
    time.sleep(0.6)
    session.send(b"slow")
    time.sleep(0.6)  # a partial command is not activity
    assert session.reply().startswith("421 4.4.2")


def test_abrupt_disconnect_mid_data_stores_nothing(gateway, raw_session, sender):
    session = raw_session(login=sender)
    open_transaction(session)
    session.send(HEAD + b"half a message\r\n")
    session.sock.shutdown(socket.SHUT_RDWR)
    session.close()
    deadline = time.monotonic() + 5
    while gateway.sessions and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gateway.sessions == 0
    assert not Message.objects.exists()


@pytest.mark.django_db(transaction=True)  # the real database thread pool
def test_many_concurrent_sessions_are_served(gateway, raw_session, smtp_starttls, sender):
    idle = [raw_session(tls=False) for _ in range(150)]
    assert all(s.greeting.startswith("220") for s in idle)
    errors = []

    def send(number):
        try:
            client = smtp_starttls(login=sender)
            for turn in range(3):
                client.sendmail("alice@example.com", ["bob@example.net"], simple_message(subject=f"{number}-{turn}"))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert Message.objects.count() == 60
    assert all(s.command("NOOP").startswith("250") for s in idle[:10])


def test_sessions_over_the_cap_are_turned_away(start_gateway, raw_session):
    start_gateway(max_sessions=3)
    sessions = [raw_session(tls=False) for _ in range(4)]
    assert [s.greeting[:9] for s in sessions] == ["220 mail."] * 3 + ["421 4.7.0"]


def test_pipelined_transaction_is_answered_in_order(raw_session, sender, tenant):
    from sending.suppressions import suppression_add

    suppression_add(tenant=tenant, email="gone@example.net")
    session = raw_session(login=sender)
    session.send(b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.net>\r\n"
                 b"RCPT TO:<gone@example.net>\r\nDATA\r\n")
    replies = [session.reply() for _ in range(4)]
    assert [r[:9] for r in replies] == ["250 2.1.0", "250 2.1.5", "550 5.1.1", "354 End d"]
    session.send(HEAD + b"pipelined\r\n.\r\nQUIT\r\n")
    assert session.reply().startswith("250 2.0.0")
    assert session.reply().startswith("221")
    assert list(Message.objects.get().recipients.values_list("email", flat=True)) == ["bob@example.net"]


def test_rcpt_before_mail_and_data_before_rcpt_are_refused(raw_session, sender):
    session = raw_session(login=sender)
    assert session.command("RCPT TO:<bob@example.net>").startswith("503 5.5.1")
    assert session.command("DATA").startswith("503 5.5.1")
    assert session.command("MAIL FROM:<alice@example.com>").startswith("250")
    assert session.command("MAIL FROM:<alice@example.com>").startswith("503 5.5.1")
    assert session.command("DATA").startswith("554 5.5.1")


@pytest.mark.parametrize(
    "address, normalised",
    [("Bob@Example.NET", "Bob@example.net"), ("j.o+tag@sub.example.co.uk", "j.o+tag@sub.example.co.uk"),
     ("user@xn--bcher-kva.example", "user@xn--bcher-kva.example")],
)
def test_ordinary_addresses_are_accepted(address, normalised):
    assert check_address(address, smtputf8=False) == normalised


def test_unicode_addresses_need_smtputf8():
    assert check_address("jos\u00e9@b\u00fccher.example", smtputf8=True) == "jos\u00e9@b\u00fccher.example"
    with pytest.raises(AddressRefused):
        check_address("jos\u00e9@example.com", smtputf8=False)


def test_path_parameters_are_parsed():
    path = parse_path("<a@example.com> SIZE=100 body=8BITMIME SMTPUTF8")
    assert path.address == "a@example.com"
    assert path.params == {"SIZE": "100", "BODY": "8BITMIME", "SMTPUTF8": True}
