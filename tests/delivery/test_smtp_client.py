"""The outbound SMTP client against a real aiosmtpd server on loopback."""
import pytest

from sending.delivery.smtp_client import (
    SMTPConnection,
    SMTPConnectionError,
    SMTPGreetingRefused,
    TLSRequiredError,
    dot_stuff,
    parse_reply,
)
from tests.delivery.sink import SMTPSink

MESSAGE = b"From: a@example.com\r\nTo: b@dest.test\r\nSubject: hi\r\n\r\nbody\r\n.dot\r\n"


def connect(sink, **kwargs):
    return SMTPConnection(address="127.0.0.1", port=sink.port, server_name="sink.test", **kwargs).connect()


@pytest.mark.parametrize("pipelining", [True, False])
def test_per_recipient_replies_in_one_transaction(pipelining):
    sink = SMTPSink(pipelining=pipelining).start()
    try:
        connection = connect(sink)
        assert ("pipelining" in connection.extensions) is pipelining
        result = connection.send("bounce@example.com", ["ok@dest.test", "defer@dest.test", "reject@dest.test", "two@dest.test"], MESSAGE)
        assert {rcpt: reply.code for rcpt, reply in result.recipients.items()} == {
            "ok@dest.test": 250, "defer@dest.test": 451, "reject@dest.test": 550, "two@dest.test": 250,
        }
        assert result.recipients["reject@dest.test"].enhanced == "5.1.1"
        [got] = sink.messages
        assert got.rcpt_tos == ["ok@dest.test", "two@dest.test"] and got.mail_from == "bounce@example.com"
        assert got.data.endswith(b"body\r\n.dot\r\n")  # dot-stuffed on the wire, restored by the server

        # the same connection carries the next transaction (RSET first)
        again = connection.send("bounce@example.com", ["ok@dest.test"], MESSAGE)
        assert again.recipients["ok@dest.test"].code == 250
        assert sink.connections == 1 and len(sink.messages) == 2
        connection.quit()
    finally:
        sink.stop()


def test_no_accepted_recipient_sends_no_data(sink):
    connection = connect(sink)
    result = connection.send("bounce@example.com", ["reject@dest.test"], MESSAGE)
    assert result.recipients["reject@dest.test"].code == 550
    assert sink.messages == []
    assert connection.send("bounce@example.com", ["ok@dest.test"], MESSAGE).recipients["ok@dest.test"].code == 250
    connection.quit()


def test_a_message_over_the_advertised_size_is_not_sent(sink):
    connection = connect(sink)
    connection.extensions["size"] = "100"
    result = connection.send("bounce@example.com", ["ok@dest.test"], MESSAGE * 10)
    reply = result.recipients["ok@dest.test"]
    assert (reply.code, reply.enhanced) == (552, "5.3.4")
    assert sink.messages == []
    connection.quit()


def test_a_421_greeting_is_refused(sink):
    sink.greeting = "421 4.3.2 busy"
    with pytest.raises(SMTPGreetingRefused) as refused:
        connect(sink)
    assert refused.value.reply.code == 421


def test_a_dropped_connection_raises_with_what_the_server_saw(sink):
    connection = connect(sink)
    with pytest.raises(SMTPConnectionError) as broken:
        connection.send("bounce@example.com", ["drop@dest.test"], MESSAGE)
    assert broken.value.replies_received == 1  # MAIL was answered
    assert not connection.connected


def test_a_stalled_reply_times_out(sink):
    sink.stall_seconds = 2
    connection = connect(sink)
    connection.timeouts.command = 0.3
    with pytest.raises(SMTPConnectionError, match="timed out"):
        connection.send("bounce@example.com", ["stall@dest.test"], MESSAGE)


def test_starttls_is_used_when_offered(tls_context):
    sink = SMTPSink(tls_context=tls_context).start()
    try:
        connection = connect(sink)
        assert connection.tls
        assert connection.send("bounce@example.com", ["ok@dest.test"], MESSAGE).recipients["ok@dest.test"].code == 250
        assert sink.messages[0].tls
        connection.quit()
    finally:
        sink.stop()


def test_required_tls_refuses_a_server_without_starttls(sink):
    with pytest.raises(TLSRequiredError):
        connect(sink, require_tls=True)
    assert sink.messages == []


def test_required_tls_for_a_domain_defers_when_the_mx_has_none(mx, queue_message, settings):
    from sending.delivery import engine
    from sending.models import Recipient

    settings.DISPATCH_TLS_REQUIRED_DOMAINS = ["dest.test"]
    _, [recipient] = queue_message("alice@dest.test")
    engine.deliver([recipient.id])
    recipient.refresh_from_db()
    assert recipient.status == Recipient.Status.DEFERRED and "STARTTLS" in recipient.last_response_text
    assert mx.messages == []


def test_required_tls_for_a_domain_delivers_over_tls(dns_server, tls_context, queue_message, settings):
    from sending.delivery import engine
    from sending.models import Recipient

    sink = SMTPSink(tls_context=tls_context).start()
    try:
        settings.DISPATCH_OUTBOUND_SMTP_PORT = sink.port
        settings.DISPATCH_TLS_REQUIRED_DOMAINS = ["dest.test"]
        dns_server.add("dest.test", "MX", "10 mx.dest.test.")
        dns_server.add("mx.dest.test", "A", "127.0.0.1")
        _, [recipient] = queue_message("alice@dest.test")
        engine.deliver([recipient.id])
        recipient.refresh_from_db()
        assert recipient.status == Recipient.Status.DELIVERED
        assert [m.tls for m in sink.messages] == [True]
    finally:
        from sending.delivery.pool import pool

        pool.close_all()
        sink.stop()


def test_reply_parsing():
    reply = parse_reply(["250-first line", "250 2.0.0 ok queued"])
    assert (reply.code, reply.enhanced) == (250, "")
    reply = parse_reply(["550-5.1.1 The email account does not exist.", "550 5.1.1 Try again."])
    assert (reply.code, reply.enhanced, reply.text) == (550, "5.1.1", "The email account does not exist. Try again.")
    assert parse_reply(["451 5.1.1 mismatched class"]).enhanced == ""


def test_dot_stuffing():
    assert dot_stuff(b".a\r\nb\r\n.\r\n..c") == b"..a\r\nb\r\n..\r\n...c\r\n.\r\n"
