"""RFC 8058 one-click unsubscribe at {DISPATCH_PUBLIC_URL}/u/<token>."""
import pytest
from django.test import Client
from django.test.client import encode_multipart

from sending.models import Suppression
from sending.unsubscribe import make_token, unsubscribe_url
from tests.bounce_ingest.conftest import events

pytestmark = pytest.mark.django_db

ONE_CLICK = "List-Unsubscribe=One-Click"


@pytest.fixture
def client():
    # enforce_csrf_checks: mailbox providers POST without any cookie or CSRF token.
    return Client(enforce_csrf_checks=True)


def path_of(recipient):
    return f"/u/{make_token(recipient)}"


def post_one_click(client, path):
    return client.post(path, ONE_CLICK, content_type="application/x-www-form-urlencoded")


def test_the_link_delivery_puts_in_list_unsubscribe_is_this_route(send, settings):
    message, [rcpt] = send("ann@dest.example")
    assert unsubscribe_url(rcpt) == f"{settings.DISPATCH_PUBLIC_URL}{path_of(rcpt)}"


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


@pytest.mark.parametrize("mangle", [
    lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),   # tampered signature
    lambda token: "1" + token,                                         # another id, old signature
    lambda token: token.split(":")[0],                                 # no signature
    lambda token: "garbage",
])
def test_forged_or_tampered_tokens_answer_400_and_change_nothing(client, tenant, send, mangle):
    message, [rcpt] = send("ann@dest.example")

    for response in (client.get(f"/u/{mangle(make_token(rcpt))}"), post_one_click(client, f"/u/{mangle(make_token(rcpt))}")):
        assert response.status_code == 400
    assert Suppression.objects.count() == 0 and events(tenant, "unsubscribed") == []


def test_a_token_signed_with_another_key_is_refused(client, tenant, send, settings):
    message, [rcpt] = send("ann@dest.example")
    settings.SECRET_KEY = "another-key-" + "x" * 50
    forged = make_token(rcpt)
    settings.SECRET_KEY = settings.SECRET_KEY.replace("another-key-", "")

    assert post_one_click(client, f"/u/{forged}").status_code == 400
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


def test_a_link_whose_log_entry_expired_answers_410(client, tenant, send):
    message, [rcpt] = send("ann@dest.example")
    path = path_of(rcpt)
    message.delete()

    assert post_one_click(client, path).status_code == 410
    assert Suppression.objects.count() == 0
