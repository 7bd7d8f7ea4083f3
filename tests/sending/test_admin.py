"""Operators see message metadata in the admin, never the body."""
import pytest

from sending.models import Message, Suppression

from .conftest import message_payload

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, make_user):
    admin = make_user()
    admin.is_staff = admin.is_superuser = True
    admin.save()
    client.force_login(admin)
    return client


def test_message_recipient_and_suppression_pages_render_without_the_body(staff_client, api, send_url, verified_domain, tenant):
    api.post(send_url, message_payload(text_body="top secret body text", html_body=None), format="json")
    message = Message.objects.get()
    recipient = message.recipients.get()
    suppression = Suppression.objects.create(tenant=tenant, email="x@example.org")
    pages = [
        "/admin/sending/message/", f"/admin/sending/message/{message.pk}/change/",
        "/admin/sending/recipient/", f"/admin/sending/recipient/{recipient.pk}/change/",
        "/admin/sending/suppression/", f"/admin/sending/suppression/{suppression.pk}/change/",
    ]
    for page in pages:
        response = staff_client.get(page)
        assert response.status_code == 200, page
        assert b"top secret body text" not in response.content and b'name="body"' not in response.content
    assert message.message_id.encode() in staff_client.get(f"/admin/sending/message/{message.pk}/change/").content
