"""RFC 8058 one-click unsubscribe at {DISPATCH_PUBLIC_URL}/u/<token>."""
import base64
from datetime import timedelta

import pytest
from django.core import signing
from django.test import Client
from django.test.client import encode_multipart
from django.utils import timezone

from sending.models import Message, Recipient, Suppression
from sending.retention import expired_messages_delete
from sending.unsubscribe import UnsubscribeClaim, make_token, read_token, unsubscribe_url
from tests.bounce_ingest.conftest import events

pytestmark = pytest.mark.django_db

ONE_CLICK = "List-Unsubscribe=One-Click"


@pytest.fixture
def client():
    # enforce_csrf_checks: mailbox providers POST without any cookie or CSRF token.
    return Client(enforce_csrf_checks=True)


def path_of(recipient):
    return f"/u/{make_token(recipient)}"


def old_form_path(recipient):
    """The link as delivered before tokens carried tenant and address (signed recipient id)."""
    return f"/u/{signing.Signer(salt='dispatch.sending.unsubscribe').sign(signing.b62_encode(recipient.pk))}"


def expire_and_delete(message):
    """Log retention deletes the message and its recipient rows, as the beat task does."""
    Message.objects.filter(pk=message.pk).update(expires_at=timezone.now() - timedelta(days=1))
    assert expired_messages_delete() == 1
    assert not Recipient.objects.filter(message_id=message.pk).exists()


def post_one_click(client, path):
    return client.post(path, ONE_CLICK, content_type="application/x-www-form-urlencoded")


def test_the_link_delivery_puts_in_list_unsubscribe_is_this_route(client, tenant, send, settings):
    message, [rcpt] = send("ann@dest.example")
    url = unsubscribe_url(rcpt)

    assert url.startswith(f"{settings.DISPATCH_PUBLIC_URL}/u/")
    assert read_token(url.rpartition("/")[2]) == UnsubscribeClaim(rcpt.id, tenant.id, "ann@dest.example")
    assert client.get(url[len(settings.DISPATCH_PUBLIC_URL):]).status_code == 200


def test_get_shows_a_confirmation_page_and_changes_nothing(client, tenant, send):
    message, [rcpt] = send("ann@dest.example")

    response = client.get(path_of(rcpt))

    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    body = response.content.decode()
    assert '<form method="post">' in body and 'name="List-Unsubscribe" value="One-Click"' in body
    assert "ann@dest.example" not in body  # masked
    assert Suppression.objects.for_tenant(tenant).count() == 0 and events(tenant, "unsubscribed") == []


def test_one_click_post_suppresses_and_emits_unsubscribed_without_login(client, tenant, send):
    message, [rcpt] = send("Ann@Dest.example")

    response = post_one_click(client, path_of(rcpt))

    assert response.status_code == 200
    [entry] = Suppression.objects.for_tenant(tenant)
    assert (entry.email, entry.reason, entry.source, entry.source_message_id) == ("ann@dest.example", "unsubscribe", "unsubscribe", message.id)
    [event] = events(tenant, "unsubscribed")
    assert (event.payload["recipient"], event.payload["email_id"]) == ("Ann@Dest.example", str(message.id))


def test_a_multipart_post_works_too_and_repeating_it_changes_nothing(client, tenant, send):
    message, [rcpt] = send("ann@dest.example")
    body = encode_multipart("BoUnDaRy", {"List-Unsubscribe": "One-Click"})

    for _ in range(2):
        response = client.post(path_of(rcpt), body, content_type="multipart/form-data; boundary=BoUnDaRy")
        assert response.status_code == 200
    assert Suppression.objects.for_tenant(tenant).count() == 1 and len(events(tenant, "unsubscribed")) == 1


def test_the_token_does_not_show_the_address(send):
    message, [rcpt] = send("ann.reader@dest.example")
    token = make_token(rcpt)

    assert "ann.reader" not in token and "dest.example" not in token
    for offset in range(3):  # base64 of the address at each of the three byte alignments
        for encode in (base64.urlsafe_b64encode, base64.b64encode):
            assert encode(b"\0" * offset + b"ann.reader@dest.example").decode()[4:-4] not in token


@pytest.mark.parametrize("mangle", [
    lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),             # tampered tag
    lambda token: token[:40] + ("A" if token[40] != "A" else "B") + token[41:],  # tampered ciphertext
    lambda token: token[:-6],                                                  # truncated
    lambda token: "garbage",
])
def test_forged_or_tampered_tokens_answer_400_and_change_nothing(client, tenant, send, mangle):
    message, [rcpt] = send("ann@dest.example")

    for response in (client.get(f"/u/{mangle(make_token(rcpt))}"), post_one_click(client, f"/u/{mangle(make_token(rcpt))}")):
        assert response.status_code == 400
    assert Suppression.objects.count() == 0 and events(tenant, "unsubscribed") == []


@pytest.mark.parametrize("mangle", [
    lambda path: path[:-1] + ("A" if path[-1] != "A" else "B"),   # tampered signature
    lambda path: "/u/1" + path[3:],                               # another id, old signature
    lambda path: path.split(":")[0],                              # no signature
])
def test_forged_or_tampered_old_form_tokens_answer_400_and_change_nothing(client, tenant, send, mangle):
    message, [rcpt] = send("ann@dest.example")

    for response in (client.get(mangle(old_form_path(rcpt))), post_one_click(client, mangle(old_form_path(rcpt)))):
        assert response.status_code == 400
    assert Suppression.objects.count() == 0 and events(tenant, "unsubscribed") == []


def test_a_token_encrypted_with_a_key_no_longer_in_the_ring_is_refused(client, tenant, send, settings):
    message, [rcpt] = send("ann@dest.example")
    settings.DISPATCH_ENCRYPTION_KEYS = [b"k" * 32]
    forged = make_token(rcpt)
    settings.DISPATCH_ENCRYPTION_KEYS = [b"n" * 32]

    assert post_one_click(client, f"/u/{forged}").status_code == 400
    assert Suppression.objects.count() == 0


def test_a_token_keeps_working_after_key_rotation(client, tenant, send, settings):
    message, [rcpt] = send("ann@dest.example")
    path = path_of(rcpt)
    settings.DISPATCH_ENCRYPTION_KEYS = [b"n" * 32, *settings.DISPATCH_ENCRYPTION_KEYS]

    assert post_one_click(client, path).status_code == 200
    assert Suppression.objects.for_tenant(tenant).get().email == "ann@dest.example"


def test_an_old_form_token_signed_with_another_key_is_refused(client, tenant, send, settings):
    message, [rcpt] = send("ann@dest.example")
    settings.SECRET_KEY = "another-key-" + "x" * 50
    forged = old_form_path(rcpt)
    settings.SECRET_KEY = settings.SECRET_KEY.replace("another-key-", "")

    assert post_one_click(client, forged).status_code == 400
    assert Suppression.objects.count() == 0


def test_a_post_without_the_one_click_body_is_refused(client, tenant, send):
    message, [rcpt] = send("ann@dest.example")

    assert client.post(path_of(rcpt), "List-Unsubscribe=Yes", content_type="application/x-www-form-urlencoded").status_code == 400
    assert client.post(path_of(rcpt)).status_code == 400
    assert Suppression.objects.count() == 0


def test_unsubscribing_only_touches_the_recipients_own_tenant(client, tenant, other_tenant, send):
    from tests.bounce_ingest.conftest import OTHER_DOMAIN, delivered
    from tests.delivery.conftest import make_signing_domain

    make_signing_domain(other_tenant, OTHER_DOMAIN)
    message, [rcpt] = send("ann@dest.example")
    delivered(other_tenant, "ann@dest.example", sender=f"news@{OTHER_DOMAIN}")

    assert post_one_click(client, path_of(rcpt)).status_code == 200

    assert Suppression.objects.filter(tenant=tenant).count() == 1
    assert Suppression.objects.filter(tenant=other_tenant).count() == 0
    assert events(other_tenant, "unsubscribed") == []


def test_an_old_form_link_still_in_inboxes_unsubscribes_while_its_row_exists(client, tenant, send):
    message, [rcpt] = send("Ann@Dest.example")

    assert client.get(old_form_path(rcpt)).status_code == 200
    assert post_one_click(client, old_form_path(rcpt)).status_code == 200

    [entry] = Suppression.objects.for_tenant(tenant)
    assert (entry.email, entry.reason, entry.source, entry.source_message_id) == ("ann@dest.example", "unsubscribe", "unsubscribe", message.id)
    assert [e.payload["recipient"] for e in events(tenant, "unsubscribed")] == ["Ann@Dest.example"]


def test_an_old_form_link_whose_log_entry_expired_answers_410(client, tenant, send):
    message, [rcpt] = send("ann@dest.example")
    path = old_form_path(rcpt)
    expire_and_delete(message)

    assert post_one_click(client, path).status_code == 410
    assert Suppression.objects.count() == 0


def test_a_link_whose_log_entry_was_deleted_by_retention_still_unsubscribes(client, tenant, send):
    message, [rcpt] = send("Ann@Dest.example")
    path = path_of(rcpt)
    expire_and_delete(message)

    page = client.get(path)
    assert page.status_code == 200 and "A**@Dest.example" in page.content.decode()
    assert Suppression.objects.count() == 0  # GET changes nothing

    assert post_one_click(client, path).status_code == 200
    [entry] = Suppression.objects.for_tenant(tenant)
    assert (entry.email, entry.reason, entry.source, entry.source_message_id) == ("ann@dest.example", "unsubscribe", "unsubscribe", None)
    # Webhook consumers still hear of it; the message's fields are null, as the message is gone.
    [event] = events(tenant, "unsubscribed")
    payload = {k: v for k, v in event.payload.items() if k != "timestamp"}
    assert payload == {"event": "unsubscribed", "recipient": "Ann@Dest.example", "sender": None, "message_id": None,
                       "email_id": None, "tenant_id": str(tenant.id), "tags": [], "metadata": {}}
    assert post_one_click(client, path).status_code == 200
    assert Suppression.objects.for_tenant(tenant).count() == 1 and len(events(tenant, "unsubscribed")) == 1


def test_an_expired_link_only_suppresses_for_its_own_tenant(client, tenant, other_tenant, send):
    from tests.bounce_ingest.conftest import OTHER_DOMAIN, delivered
    from tests.delivery.conftest import make_signing_domain

    make_signing_domain(other_tenant, OTHER_DOMAIN)
    message, [rcpt] = send("ann@dest.example")
    other_message, [other_rcpt] = delivered(other_tenant, "ann@dest.example", sender=f"news@{OTHER_DOMAIN}")
    path = path_of(rcpt)
    expire_and_delete(message)

    assert post_one_click(client, path).status_code == 200

    assert Suppression.objects.filter(tenant=tenant).count() == 1
    assert Suppression.objects.filter(tenant=other_tenant).count() == 0
    assert Recipient.objects.filter(pk=other_rcpt.pk).exists() and events(other_tenant, "unsubscribed") == []


def test_a_link_of_a_deleted_tenant_answers_410(client, tenant, send):
    message, [rcpt] = send("ann@dest.example")
    path = path_of(rcpt)
    tenant.delete()

    assert post_one_click(client, path).status_code == 410
    assert Suppression.objects.count() == 0
