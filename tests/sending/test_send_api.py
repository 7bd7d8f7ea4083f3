"""POST /dispatch/tenants/{id}/send: fields, MIME, storage, checks and errors."""
import base64
import email
from email import policy

import pytest

from dispatch_site import crypto
from sending.models import Message, Recipient, Suppression

from .conftest import make_verified_domain, message_payload

pytestmark = pytest.mark.django_db

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def stored_mime(message):
    raw = crypto.decrypt(bytes(message.body), f"message:{message.tenant_id}:{message.id}")
    return raw, email.message_from_bytes(raw, policy=policy.default)


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


def test_it_queues_a_message_and_answers_in_the_spec_shape(cred_api, send_url, verified_domain, tenant):
    response = cred_api.post(send_url, message_payload(), format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["message"] == "1 email(s) queued for delivery"
    message = Message.objects.get(pk=body["data"]["id"])
    assert body["data"]["message_id"] == message.message_id
    assert message.message_id.endswith("@mail.dispatch.test")
    assert body["data"]["recipients"] == [{"email": "alice@example.org", "status": "queued"}]
    assert message.tenant == tenant and message.source == "api" and message.status == "queued"
    assert message.credential is not None
    assert message.from_address == "sender@example.com"
    assert message.to_addresses == ["alice@example.org"]
    recipient = message.recipients.get()
    assert (recipient.email, recipient.domain, recipient.kind, recipient.status) == (
        "alice@example.org", "example.org", "to", "queued",
    )
    assert (message.expires_at - message.queued_at).days == tenant.plan.log_retention_days


def test_the_body_is_encrypted_at_rest_and_bound_to_its_row(api, send_url, verified_domain):
    response = api.post(send_url, message_payload(text_body="secret words here"), format="json")
    message = Message.objects.get(pk=response.json()["data"]["id"])
    assert b"secret words" not in bytes(message.body)
    raw, _ = stored_mime(message)
    assert b"secret words here" in raw
    assert message.body_size_bytes == len(raw)
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(bytes(message.body), f"message:{message.tenant_id}:00000000-0000-0000-0000-000000000000")


def test_mime_is_multipart_alternative_with_our_headers(api, send_url, verified_domain):
    response = api.post(
        send_url,
        message_payload(
            **{"from": "Acme Støre <Sender@Example.COM>"},
            to=["Alice <alice@example.org>", "bob@example.net"],
            cc=["carol@example.org"],
            bcc=["dave@example.org"],
            reply_to="help@example.com",
            subject="Grüße, Alice",
            headers={"X-Campaign": "spring", "In-Reply-To": "<abc@example.org>"},
        ),
        format="json",
    )
    assert response.status_code == 200, response.content
    message = Message.objects.get(pk=response.json()["data"]["id"])
    raw, parsed = stored_mime(message)
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert all(byte < 128 for byte in raw)  # 7bit clean: no 8BITMIME needed downstream
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert parsed.get_body(("plain",)).get_content().strip() == "Hi Alice"
    assert parsed.get_body(("html",)).get_content().strip() == "<p>Hi Alice</p>"
    assert str(parsed["Subject"]) == "Grüße, Alice"
    assert parsed["From"].addresses[0].display_name == "Acme Støre"
    assert parsed["From"].addresses[0].addr_spec == "Sender@example.com"
    assert [a.addr_spec for a in parsed["To"].addresses] == ["alice@example.org", "bob@example.net"]
    assert parsed["To"].addresses[0].display_name == "Alice"
    assert [a.addr_spec for a in parsed["Cc"].addresses] == ["carol@example.org"]
    assert parsed["Bcc"] is None and b"dave@" not in raw
    assert parsed["Reply-To"].addresses[0].addr_spec == "help@example.com"
    assert parsed["Message-ID"] == f"<{message.message_id}>"
    assert parsed["Date"].datetime is not None
    assert parsed["X-Campaign"] == "spring"
    assert parsed["In-Reply-To"] == "<abc@example.org>"
    assert parsed["MIME-Version"] == "1.0"
    kinds = dict(message.recipients.values_list("email", "kind"))
    assert kinds == {"alice@example.org": "to", "bob@example.net": "to", "carol@example.org": "cc", "dave@example.org": "bcc"}
    assert message.cc_addresses == ["carol@example.org"] and message.bcc_count == 1
    assert message.from_header == "Acme Støre <Sender@example.com>"


def test_text_only_and_html_only_messages_are_single_part(api, send_url, verified_domain):
    for fields, content_type in (({"html_body": None}, "text/plain"), ({"text_body": None}, "text/html")):
        response = api.post(send_url, message_payload(**fields), format="json")
        _, parsed = stored_mime(Message.objects.get(pk=response.json()["data"]["id"]))
        assert parsed.get_content_type() == content_type


def test_attachments_and_inline_images_build_mixed_and_related(api, send_url, verified_domain):
    response = api.post(
        send_url,
        message_payload(
            html_body='<p>Logo: <img src="cid:logo1"></p>',
            attachments=[
                {"filename": "report.pdf", "content_type": "application/pdf", "content": base64.b64encode(b"%PDF-1.4 x").decode()},
                {"filename": "logo.png", "content_type": "image/png", "content": base64.b64encode(PNG).decode(),
                 "inline": True, "content_id": "logo1"},
            ],
        ),
        format="json",
    )
    assert response.status_code == 200, response.content
    message = Message.objects.get(pk=response.json()["data"]["id"])
    assert message.has_attachments
    _, parsed = stored_mime(message)
    assert parsed.get_content_type() == "multipart/mixed"
    alternative, pdf = list(parsed.iter_parts())
    assert alternative.get_content_type() == "multipart/alternative"
    text, related = list(alternative.iter_parts())
    assert related.get_content_type() == "multipart/related"
    html, logo = list(related.iter_parts())
    assert html.get_content_type() == "text/html"
    assert logo["Content-ID"] == "<logo1>" and logo.get_content() == PNG
    assert logo.get_content_disposition() == "inline"
    assert pdf.get_filename() == "report.pdf" and pdf.get_content() == b"%PDF-1.4 x"
    assert pdf.get_content_disposition() == "attachment"


def test_tags_and_metadata_are_stored(api, send_url, verified_domain):
    response = api.post(send_url, message_payload(tags=["welcome", "onboarding"], metadata={"user_id": 42, "plan": "pro"}), format="json")
    message = Message.objects.get(pk=response.json()["data"]["id"])
    assert message.tags == ["welcome", "onboarding"]
    assert message.metadata == {"user_id": 42, "plan": "pro"}


def test_duplicate_recipients_are_delivered_once(api, send_url, verified_domain):
    response = api.post(send_url, message_payload(to=["a@example.org", "A@EXAMPLE.org"], cc=["a@example.org"]), format="json")
    assert response.json()["data"]["recipients"] == [{"email": "a@example.org", "status": "queued"}]


def test_idn_recipient_domains_are_converted_to_punycode(api, send_url, verified_domain):
    response = api.post(send_url, message_payload(to=["max@bücher.de"]), format="json")
    assert response.status_code == 200, response.content
    recipient = Recipient.objects.get()
    assert (recipient.email, recipient.domain) == ("max@xn--bcher-kva.de", "xn--bcher-kva.de")


# --- checks ---------------------------------------------------------------------------------------
def test_it_rejects_an_unverified_from_domain(api, send_url, verified_domain, tenant):
    from domains.services import domain_create

    domain_create(tenant=tenant, name="pending.example")  # added but never verified
    for sender in ("x@pending.example", "x@nowhere.example", "x@sub.example.com"):
        response = api.post(send_url, message_payload(**{"from": sender}), format="json")
        assert_error(response, 400, "DOMAIN_NOT_VERIFIED")
    assert not Message.objects.exists()


def test_another_tenants_verified_domain_does_not_count(api, send_url, other_tenant):
    make_verified_domain(other_tenant, "theirs.example")
    response = api.post(send_url, message_payload(**{"from": "x@theirs.example"}), format="json")
    assert_error(response, 400, "DOMAIN_NOT_VERIFIED")


def test_an_inactive_tenant_cannot_send(api, send_url, verified_domain, tenant):
    from tenants.services import tenant_set_status

    tenant_set_status(tenant=tenant, status="suspended", reason="abuse")
    assert_error(api.post(send_url, message_payload(), format="json"), 403, "TENANT_NOT_ACTIVE")
    assert not Message.objects.exists()


@pytest.mark.parametrize("address", [
    "not-an-address", "a@b", "a@[127.0.0.1]", "a%b@example.org", "a!b@example.org", "@relay.example:a@example.org",
    "ü@example.org", '"a b"@example.org', "a..b@example.org", "x" * 65 + "@example.org", "a@" + "b" * 64 + ".org",
    "a@example.org, b@example.org", "a@-bad.example",
])
def test_it_rejects_invalid_recipients(api, send_url, verified_domain, address):
    response = api.post(send_url, message_payload(to=[address]), format="json")
    assert response.status_code == 400, (address, response.content)
    assert response.json()["error"]["code"] in ("INVALID_ADDRESS", "VALIDATION_ERROR")
    assert not Message.objects.exists()


def test_it_limits_recipients_per_message(api, send_url, verified_domain, settings):
    settings.DISPATCH_MAX_RECIPIENTS = 5
    payload = message_payload(to=[f"r{i}@example.org" for i in range(3)], cc=["c@example.org"], bcc=["b1@example.org", "b2@example.org"])
    assert_error(api.post(send_url, payload, format="json"), 400, "TOO_MANY_RECIPIENTS")
    payload["bcc"] = ["b1@example.org"]
    assert api.post(send_url, payload, format="json").status_code == 200


def test_huge_recipient_arrays_are_refused_without_storing(api, send_url, verified_domain):
    response = api.post(send_url, message_payload(to=[f"r{i}@example.org" for i in range(20_000)]), format="json")
    assert_error(response, 400, "TOO_MANY_RECIPIENTS")
    assert not Message.objects.exists()


def test_it_refuses_messages_over_the_size_limit(api, send_url, verified_domain, settings):
    settings.DISPATCH_MAX_MESSAGE_BYTES = 4096
    big = base64.b64encode(b"x" * 5000).decode()
    payload = message_payload(attachments=[{"filename": "a.bin", "content_type": "application/octet-stream", "content": big}])
    assert_error(api.post(send_url, payload, format="json"), 413, "MESSAGE_TOO_LARGE")
    payload = message_payload(text_body="y" * 4000)  # small input, but the encoded message is over the limit
    assert_error(api.post(send_url, payload, format="json"), 413, "MESSAGE_TOO_LARGE")
    assert not Message.objects.exists()


def test_suppressed_recipients_are_skipped_and_reported(api, send_url, verified_domain, tenant):
    Suppression.objects.create(tenant=tenant, email="bob@example.org", reason="bounced")
    response = api.post(send_url, message_payload(to=["alice@example.org", "Bob@Example.org"]), format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["message"] == "1 email(s) queued for delivery"
    assert body["data"]["recipients"] == [
        {"email": "alice@example.org", "status": "queued"}, {"email": "Bob@example.org", "status": "suppressed"},
    ]
    assert dict(Recipient.objects.values_list("email", "status")) == {"alice@example.org": "queued", "Bob@example.org": "suppressed"}


def test_all_recipients_suppressed_is_an_error(api, send_url, verified_domain, tenant):
    Suppression.objects.create(tenant=tenant, email="alice@example.org")
    error = assert_error(api.post(send_url, message_payload(), format="json"), 400, "RECIPIENT_SUPPRESSED")
    assert error["details"] == {"suppressed": ["alice@example.org"]}
    assert not Message.objects.exists()


def test_another_tenants_suppression_does_not_apply(api, send_url, verified_domain, other_tenant):
    Suppression.objects.create(tenant=other_tenant, email="alice@example.org")
    assert api.post(send_url, message_payload(), format="json").status_code == 200


# --- malformed input --------------------------------------------------------------------------
@pytest.mark.parametrize("payload, field", [
    (message_payload(**{"from": None}), "from"),
    (message_payload(to=None), "to"),
    (message_payload(to=[]), "to"),
    (message_payload(to=[1, 2]), "to"),
    (message_payload(subject=None), "subject"),
    (message_payload(subject=["x"]), "subject"),
    (message_payload(html_body=None, text_body=None), "html_body"),
    (message_payload(attachments=[{"filename": "a", "content_type": "text/plain", "content": "***not base64***"}]), "attachments[0].content"),
    (message_payload(attachments=[{"filename": "a", "content_type": "not a type", "content": "eA=="}]), "attachments[0]"),
    (message_payload(attachments=[{"filename": "a", "content_type": "multipart/mixed", "content": "eA=="}]), "attachments[0]"),
    (message_payload(attachments=[{"filename": "a", "content_type": "image/png", "content": "eA==", "inline": True}]), "attachments[0]"),
    (message_payload(attachments="nope"), "attachments"),
    (message_payload(attachments=[{"filename": "a", "content": "eA=="}]), "attachments[0].content_type"),
    (message_payload(tags="x"), "tags"),
    (message_payload(tags=["x" * 101]), "tags"),
    (message_payload(tags=[f"t{i}" for i in range(11)]), "tags"),
    (message_payload(metadata=["x"]), "metadata"),
    (message_payload(metadata={"a": {"nested": 1}}), "metadata"),
    (message_payload(metadata={"k": "v" * 5000}), "metadata"),
    (message_payload(headers=["X-A: b"]), "headers"),
    (message_payload(use_master_template="yes"), "use_master_template"),
    (message_payload(template_variables=[1]), "template_variables"),
    (message_payload(reply_to=[f"r{i}@example.org" for i in range(11)]), "reply_to"),
])
def test_malformed_fields_answer_400_and_store_nothing(api, send_url, verified_domain, payload, field):
    response = api.post(send_url, payload, format="json")
    error = assert_error(response, 400, response.json()["error"]["code"])
    assert field in error.get("details", {}), error
    assert not Message.objects.exists()


def test_optional_fields_sent_as_null_count_as_not_given(api, send_url, verified_domain):
    """JSON clients often send null for an optional field: the spec's optional fields (and an
    attachment's optional inline/content_id) then take their defaults instead of a 400."""
    payload = {**message_payload(), "text_body": None, "template_id": None, "template_variables": None,
               "use_master_template": None, "attachments": [
                   {"filename": "r.txt", "content_type": "text/plain", "content": "eA==", "inline": None, "content_id": None}]}
    response = api.post(send_url, payload, format="json")
    assert response.status_code == 200, response.content
    raw, parsed = stored_mime(Message.objects.get(pk=response.json()["data"]["id"]))
    assert b"<!DOCTYPE" not in raw  # no master template wrapper
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_content_disposition() == "attachment" and attachment.get_filename() == "r.txt"


def test_non_json_and_non_object_bodies_are_refused(api, send_url, verified_domain):
    response = api.post(send_url, data="from=a@example.com", content_type="application/x-www-form-urlencoded")
    assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    response = api.post(send_url, data="{not json", content_type="application/json")
    assert_error(response, 400, "MALFORMED_REQUEST")
    response = api.post(send_url, data="[1, 2]", content_type="application/json")
    assert_error(response, 400, "VALIDATION_ERROR")
    assert not Message.objects.exists()


# --- header injection ------------------------------------------------------------------------
@pytest.mark.parametrize("overrides", [
    {"subject": "Hi\r\nBcc: victim@example.org"},
    {"subject": "Hi\nX-Evil: 1"},
    {"from": "Name\r\nBcc: v@example.org <sender@example.com>"},
    {"to": ["alice@example.org\r\nBcc: v@example.org"]},
    {"cc": ["c@example.org\nBcc: v@example.org"]},
    {"reply_to": "r@example.org\r\nX-Evil: 1"},
    {"headers": {"X-Ok": "fine\r\nBcc: v@example.org"}},
    {"headers": {"X-Bad\r\nBcc": "v@example.org"}},
    {"headers": {"X Space": "v"}},
    {"attachments": [{"filename": "a\r\nX-Evil: 1.txt", "content_type": "text/plain", "content": "eA=="}]},
    {"attachments": [{"filename": "a.txt", "content_type": "text/plain\r\nX-Evil: 1", "content": "eA=="}]},
    {"attachments": [{"filename": "a.png", "content_type": "image/png", "content": "eA==", "inline": True, "content_id": "x>\r\nX-Evil: <y"}]},
    # A content_id on an attachment that is not inline is written too: it is checked the same way.
    {"attachments": [{"filename": "a.png", "content_type": "image/png", "content": "eA==", "content_id": "x>\r\nX-Evil: <y"}]},
    {"attachments": [{"filename": "a.png", "content_type": "image/png", "content": "eA==", "content_id": "x>\r\n\r\nbody <y"}]},
    {"attachments": [{"filename": "a.png", "content_type": "image/png", "content": "eA==", "content_id": "x>\r\nBcc : v@example.org"}]},
    {"attachments": [{"filename": "a.png", "content_type": "image/png", "content": "eA==", "content_id": "x> <y"}]},
    {"tags": ["a\nb"]},
])
def test_header_injection_is_refused(api, send_url, verified_domain, overrides):
    response = api.post(send_url, message_payload(**overrides), format="json")
    assert response.status_code == 400, response.content
    assert not Message.objects.exists()


@pytest.mark.parametrize("overrides", [
    {"from": "=?utf-8?q?Shop=0D=0ABcc:_v@example.org?= <sender@example.com>"},
    {"from": "=?utf-8?b?U2hvcApYLUV2aWw6IDE=?= <sender@example.com>"},
    {"from": "=?utf-8?q?Shop=01?= <sender@example.com>"},
    {"to": ["=?utf-8?q?Alice=0D=0ABcc:_v@example.org?= <alice@example.org>"]},
    {"cc": ["=?utf-8?q?C=0A?= <c@example.org>"]},
    {"reply_to": ["=?utf-8?q?R=0D=0AX-Evil:_1?= <r@example.org>"]},
])
def test_a_display_name_whose_encoded_words_decode_to_control_characters_is_refused(api, send_url, verified_domain, overrides):
    field = next(iter(overrides))
    error = assert_error(api.post(send_url, message_payload(**overrides), format="json"), 400, "INVALID_ADDRESS")
    assert field in error["details"]
    assert not Message.objects.exists()


@pytest.mark.parametrize("name", [
    "From", "to", "Bcc", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
    "DKIM-Signature", "Return-Path", "Received", "Sender", "List-Unsubscribe", "List-Unsubscribe-Post", "X-Dispatch-Tags",
])
def test_structural_headers_cannot_be_set(api, send_url, verified_domain, name):
    error = assert_error(api.post(send_url, message_payload(headers={name: "x"}), format="json"), 400, "HEADER_NOT_ALLOWED")
    assert name in error["message"]


# --- tenancy ------------------------------------------------------------------------------------
def test_a_credential_of_another_tenant_gets_credential_mismatch(other_cred_api, send_url, verified_domain):
    assert_error(other_cred_api.post(send_url, message_payload(), format="json"), 403, "CREDENTIAL_MISMATCH")
    assert not Message.objects.exists()


def test_a_user_cannot_send_for_a_tenant_they_do_not_own(other_api, send_url, verified_domain):
    assert_error(other_api.post(send_url, message_payload(), format="json"), 404, "TENANT_NOT_FOUND")


def test_unauthenticated_requests_are_refused(client, send_url, verified_domain):
    response = client.post(send_url, message_payload(), content_type="application/json")
    assert_error(response, 401, "UNAUTHORIZED")


@pytest.mark.parametrize("subject", [
    "short", "word " * 60, "x" * 995, "Grüße " * 40, "mixed ascii then ü " + "y" * 300,
])
def test_long_and_non_ascii_headers_fold_within_line_limits(api, send_url, verified_domain, subject):
    response = api.post(send_url, message_payload(
        subject=subject.strip(), to=[f"Recipient Number {i} <r{i}@example.org>" for i in range(30)],
        headers={"X-Long": "v " * 300},
    ), format="json")
    assert response.status_code == 200, response.content
    raw, parsed = stored_mime(Message.objects.get())
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    assert max(len(line) for line in head.split(b"\r\n")) <= 998
    assert str(parsed["Subject"]) == subject.strip()
    assert len(parsed["To"].addresses) == 30 and parsed["To"].addresses[29].display_name == "Recipient Number 29"
    assert parsed["X-Long"] == "v " * 300


def test_inline_parts_without_html_become_attachments_and_unicode_filenames_survive(api, send_url, verified_domain):
    response = api.post(send_url, message_payload(
        html_body=None,
        attachments=[
            {"filename": "logo.png", "content_type": "image/png", "content": base64.b64encode(PNG).decode(), "inline": True, "content_id": "l1"},
            {"filename": "Rechnung-für-März.pdf", "content_type": "application/pdf", "content": base64.b64encode(b"%PDF").decode()},
        ],
    ), format="json")
    assert response.status_code == 200, response.content
    _, parsed = stored_mime(Message.objects.get())
    assert parsed.get_content_type() == "multipart/mixed"
    text, logo, pdf = list(parsed.iter_parts())
    assert text.get_content_type() == "text/plain"
    assert logo.get_content_disposition() == "inline" and logo["Content-ID"] == "<l1>"
    assert pdf.get_filename() == "Rechnung-für-März.pdf" and pdf.get_content() == b"%PDF"


def test_reply_to_accepts_a_list(api, send_url, verified_domain):
    api.post(send_url, message_payload(reply_to=["a@example.com", "Help Desk <help@example.com>"]), format="json")
    _, parsed = stored_mime(Message.objects.get())
    assert [a.addr_spec for a in parsed["Reply-To"].addresses] == ["a@example.com", "help@example.com"]
