"""template_id / template_variables / use_master_template on /send, and X-Dispatch-Template on SMTP."""
import pytest

from sending.models import Message
from sending.services import submit_raw

from .conftest import message_payload
from .test_send_api import assert_error, stored_mime

pytestmark = pytest.mark.django_db


@pytest.fixture
def welcome(tenant):
    from templates_app.services import template_create

    return template_create(
        tenant=tenant, name="Welcome", slug="welcome-email", subject="Welcome, {{user_name}}!",
        html_body="<h1>Hello {{user_name}}</h1><p>Welcome to {{company}}.</p>", text_body="Hello {{user_name}}, welcome to {{company}}.",
    )


def test_a_template_by_slug_overrides_subject_and_body(api, send_url, verified_domain, welcome):
    response = api.post(send_url, message_payload(
        subject="unused", html_body="<p>ignored</p>", text_body=None, template_id="welcome-email",
        template_variables={"user_name": "John <Doe>", "company": "Acme"},
    ), format="json")
    assert response.status_code == 200, response.content
    message = Message.objects.get(pk=response.json()["data"]["id"])
    assert message.subject == "Welcome, John <Doe>!" and message.template_ref == "welcome-email"
    _, parsed = stored_mime(message)
    assert str(parsed["Subject"]) == "Welcome, John <Doe>!"
    assert "<h1>Hello John &lt;Doe&gt;</h1>" in parsed.get_body(("html",)).get_content()
    assert parsed.get_body(("plain",)).get_content().strip() == "Hello John <Doe>, welcome to Acme."


def test_a_template_by_uuid_needs_no_subject(api, send_url, verified_domain, welcome):
    response = api.post(send_url, message_payload(subject=None, html_body=None, text_body=None, template_id=str(welcome.id),
                                                  template_variables={"user_name": "Ann"}), format="json")
    assert response.status_code == 200, response.content
    assert Message.objects.get().subject == "Welcome, Ann!"


def test_an_unknown_or_foreign_template_is_404(api, send_url, verified_domain, other_tenant):
    from templates_app.services import template_create

    theirs = template_create(tenant=other_tenant, name="T", slug="theirs", subject="s", html_body="<p>x</p>")
    for ref in ("nope", "theirs", str(theirs.id)):
        assert_error(api.post(send_url, message_payload(template_id=ref), format="json"), 404, "TEMPLATE_NOT_FOUND")
    assert not Message.objects.exists()


def test_use_master_template_wraps_the_html(api, send_url, verified_domain):
    response = api.post(send_url, message_payload(use_master_template=True), format="json")
    _, parsed = stored_mime(Message.objects.get(pk=response.json()["data"]["id"]))
    html = parsed.get_body(("html",)).get_content()
    assert "<!DOCTYPE html>" in html and "<p>Hi Alice</p>" in html


def test_a_subject_with_line_breaks_is_refused_even_with_a_template(api, send_url, verified_domain, welcome):
    response = api.post(send_url, message_payload(subject="a\r\nBcc: x@example.org", use_master_template=True), format="json")
    assert response.status_code == 400
    assert not Message.objects.exists()


def test_smtp_x_dispatch_template_replaces_the_body(tenant, verified_domain, welcome):
    raw = (
        b"From: shop@example.com\r\nTo: alice@example.org\r\nSubject: ignored\r\nX-Dispatch-Template: welcome-email\r\n"
        b'X-Dispatch-Template-Variables: {"user_name": "Alice", "company": "Acme"}\r\nX-Keep: yes\r\n'
        b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nclient body\r\n"
    )
    message = submit_raw(tenant=tenant, mail_from="shop@example.com", rcpt_tos=["alice@example.org"], raw=raw).message
    stored, parsed = stored_mime(message)
    assert message.subject == "Welcome, Alice!" and str(parsed["Subject"]) == "Welcome, Alice!"
    assert parsed.get_all("Subject") == ["Welcome, Alice!"] and parsed.get_all("MIME-Version") == ["1.0"]
    assert parsed.get_content_type() == "multipart/alternative"
    assert b"client body" not in stored and b"X-Dispatch" not in stored
    assert parsed["X-Keep"] == "yes"
    assert "Hello Alice" in parsed.get_body(("html",)).get_content()
