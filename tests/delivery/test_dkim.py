"""Delivered copies carry a DKIM signature that independent verifiers accept."""
import dkim
import pytest

from sending.delivery import engine
from tests.sending.opendkim import available, opendkim_verify

pytestmark = pytest.mark.django_db


def test_delivered_messages_verify_with_dkimpy_and_opendkim(mx, queue_message, signing_domain):
    _, recipients = queue_message("alice@dest.test", "bob@dest.test", subject="Grüße, a DKIM test", text="Zeile 1\n.dot\n\n\n")
    engine.deliver([r.id for r in recipients])
    assert len(mx.messages) == 2

    txt = f"v=DKIM1; k=rsa; p={signing_domain.dkim_public_key}"
    for received in mx.messages:
        assert dkim.verify(received.data, dnsfunc=lambda name, timeout=5: txt.encode())
        if available():
            ok, diagnostics = opendkim_verify(received.data, record_name=f"{signing_domain.dkim_host}.", txt=txt)
            assert ok, diagnostics
    # each copy is signed on its own (its own List-Unsubscribe)
    assert mx.messages[0].data != mx.messages[1].data


@pytest.mark.skipif(not available(), reason="opendkim-testmsg / unshare not available")
def test_opendkim_rejects_a_tampered_copy(mx, queue_message, signing_domain):
    _, [recipient] = queue_message("alice@dest.test")
    engine.deliver([recipient.id])
    tampered = mx.messages[0].data.replace(b"Hello there.", b"Hello there!")
    ok, _ = opendkim_verify(tampered, record_name=f"{signing_domain.dkim_host}.", txt=f"v=DKIM1; k=rsa; p={signing_domain.dkim_public_key}")
    assert not ok
