"""Curated hostile payloads against the send, template, domain, suppression and webhook
endpoints (issue 14, item 5): CR/LF in every string field, NUL, invalid UTF-8, unpaired
surrogates, 10 MB strings, deep JSON, wrong types, duplicate keys, non-finite numbers, huge
and badly encoded attachments, IDN and quoted-local-part addresses. Each has its expected
status and error code; a refused request stores nothing, and an accepted one never lets a
CR/LF become a header of the stored message."""
import base64
import json
from dataclasses import dataclass

import pytest
from django.utils import timezone

from tests.conftest import basic_client

from .world import shared_dkim_keypair, tenant_state

pytestmark = pytest.mark.django_db

DOMAIN = "sender.example.com"
INJECTION = "x\r\nX-Injected: yes"
ATTACHMENT = {"filename": "a.txt", "content_type": "text/plain", "content": base64.b64encode(b"hi").decode()}
SEND = {"from": f"app@{DOMAIN}", "to": ["alice@example.org"], "subject": "Hi", "text_body": "Hello", "html_body": "<p>Hello</p>"}
TEMPLATE = {"name": "Welcome", "subject": "Welcome", "html_body": "<p>Hi {{ name }}</p>", "text_body": "Hi {{ name }}"}
WEBHOOK = {"url": "https://hooks.example.net/in", "events": ["delivered"]}
TEN_MB = 10 * 1024 * 1024


@dataclass
class Payload:
    name: str
    path: str  # under /api/v1/dispatch/tenants/<id>
    body: object  # JSON-able, or bytes sent as they are
    status: int
    code: str | None = None  # error code expected with a 4xx

    def __str__(self):
        return self.name


def send(**changes):
    return {**SEND, **changes}


def raw(text: str) -> bytes:
    return text.encode("utf-8")


def nested(depth):
    return b'{"from": "x", "metadata": ' + b"[" * depth + b"]" * depth + b"}"


PAYLOADS = [
    # --- CR/LF: header fields refuse it; bodies and metadata keep it, never as a header
    Payload("send from CRLF", "/send", send(**{"from": f"app@{DOMAIN}\r\nX-Injected: yes"}), 400, "INVALID_ADDRESS"),
    Payload("send from display name CRLF", "/send", send(**{"from": f"Evil\r\nX-Injected: yes <app@{DOMAIN}>"}), 400, "INVALID_ADDRESS"),
    *[Payload(f"send {field} CRLF", "/send", send(**{field: ["bob@example.org\r\nX-Injected: yes"]}), 400, "INVALID_ADDRESS")
      for field in ("to", "cc", "bcc", "reply_to")],
    Payload("send subject CRLF", "/send", send(subject=INJECTION), 400, "HEADER_INJECTION"),
    Payload("send header value CRLF", "/send", send(headers={"X-Custom": INJECTION}), 400, "HEADER_INJECTION"),
    Payload("send header name CRLF", "/send", send(headers={"X-A\r\nX-Injected": "yes"}), 400, "HEADER_INJECTION"),
    Payload("send header name with colon", "/send", send(headers={"X-Injected: yes\r\nX-B": "c"}), 400, "HEADER_INJECTION"),
    Payload("send tag CRLF", "/send", send(tags=[INJECTION]), 400, "VALIDATION_ERROR"),
    *[Payload(f"send attachment {key} CRLF", "/send",
              send(attachments=[{**ATTACHMENT, "inline": True, "content_id": "cid", key: f"{ATTACHMENT.get(key, 'cid')}\r\nX-Injected: yes"}]),
              400, "HEADER_INJECTION") for key in ("filename", "content_type", "content_id")],
    Payload("send text_body CRLF", "/send", send(text_body=INJECTION), 200),
    Payload("send html_body CRLF", "/send", send(html_body=INJECTION), 200),
    Payload("send metadata CRLF", "/send", send(metadata={"k": INJECTION}), 200),
    Payload("send template variable CRLF into the subject", "/send",
            send(subject="Hi {{ name }}", template_variables={"name": INJECTION}), 200),
    # --- NUL and text that is not Unicode
    *[Payload(f"send {field} NUL", "/send", send(**{field: value}), 400, "VALIDATION_ERROR") for field, value in (
        ("from", f"app\x00@{DOMAIN}"), ("to", ["bob\x00@example.org"]), ("subject", "Hi\x00"), ("text_body", "a\x00b"),
        ("html_body", "<p>\x00</p>"), ("metadata", {"k": "a\x00b"}), ("metadata", {"k\x00": "a"}), ("tags", ["a\x00"]),
        ("headers", {"X-A": "a\x00"}), ("template_variables", {"name": "\x00"}),
    )],
    Payload("send invalid UTF-8", "/send", b'{"from": "app@sender.example.com", "to": ["a@example.org"], "subject": "\xff\xfe"}',
            400, "MALFORMED_REQUEST"),
    Payload("send unpaired surrogate", "/send", raw(json.dumps(SEND)[:-1] + ', "subject": "\\ud800"}').replace(b'"subject": "Hi", ', b""),
            400, "VALIDATION_ERROR"),
    # --- size
    Payload("send 10 MB subject", "/send", send(subject="a" * TEN_MB), 400, "VALIDATION_ERROR"),
    Payload("send 10 MB address", "/send", send(to=["a" * TEN_MB + "@example.org"]), 400, "INVALID_ADDRESS"),
    Payload("send 10 MB text body (under the message limit)", "/send", send(text_body="word " * (TEN_MB // 5)), 200),
    Payload("send 30 MB attachment", "/send", send(attachments=[{**ATTACHMENT, "content": base64.b64encode(b"a" * 30_000_000).decode()}]),
            413, "MESSAGE_TOO_LARGE"),
    Payload("send 101 attachments", "/send", send(attachments=[ATTACHMENT] * 101), 400, "VALIDATION_ERROR"),
    # --- structure
    Payload("send JSON nested 10,000 deep", "/send", nested(10_000), 400, "MALFORMED_REQUEST"),
    Payload("send JSON nested 100,000 deep", "/send", b"[" * 100_000 + b"]" * 100_000, 400, "MALFORMED_REQUEST"),
    Payload("send JSON nested 65 deep", "/send", nested(64), 400, "MALFORMED_REQUEST"),
    Payload("send duplicate key", "/send", raw(json.dumps(SEND)[:-1] + ', "to": ["mallory@example.org"]}'), 400, "MALFORMED_REQUEST"),
    Payload("send NaN", "/send", raw(json.dumps(send(metadata={"x": float("nan")}))), 400, "MALFORMED_REQUEST"),
    Payload("send Infinity", "/send", raw(json.dumps(send(metadata={"x": float("inf")}))), 400, "MALFORMED_REQUEST"),
    Payload("send 5,000-digit number", "/send", raw(json.dumps(SEND)[:-1] + ', "metadata": {"x": ' + "9" * 5000 + "}}"), 400, "MALFORMED_REQUEST"),
    Payload("send body is a list", "/send", [SEND], 400, "VALIDATION_ERROR"),
    Payload("send body is a string", "/send", "hello", 400, "VALIDATION_ERROR"),
    Payload("send body is not JSON", "/send", b"from=app@sender.example.com", 400, "MALFORMED_REQUEST"),
    *[Payload(f"send wrong type {field}={value!r}", "/send", send(**{field: value}), 400, "VALIDATION_ERROR") for field, value in (
        ("to", 5), ("to", {"a": 1}), ("to", [None]), ("subject", ["x"]), ("from", None), ("attachments", "x"),
        ("attachments", [5]), ("metadata", ["x"]), ("template_variables", "x"), ("tags", {"a": 1}), ("tags", [1]),
        ("headers", ["x"]), ("use_master_template", "yes"),
    )],
    Payload("send bad base64", "/send", send(attachments=[{**ATTACHMENT, "content": "!!!not base64"}]), 400, "VALIDATION_ERROR"),
    Payload("send base64 without padding", "/send", send(attachments=[{**ATTACHMENT, "content": "aGk"}]), 400, "VALIDATION_ERROR"),
    # --- addresses
    Payload("send to IDN domain", "/send", send(to=["user@bücher.example"]), 200),
    Payload("send to display-name address", "/send", send(to=["Bob <bob@example.org>"]), 200),
    Payload("send from IDN domain (verified)", "/send", send(**{"from": "app@bücher.example"}), 200),
    *[Payload(f"send to {address!r}", "/send", send(to=[address]), 400, "INVALID_ADDRESS") for address in (
        "用户@例子.广告",  # non-ASCII local part needs SMTPUTF8, which we do not offer
        '"john doe"@example.org', '"a\\"b"@example.org', '"evil\r\nBcc: x"@example.org', "user@[127.0.0.1]",
        "a@b@example.org", "@example.org", "user@", "user@-bad-.example", "user@exa mple.org", "a" * 65 + "@example.org",
        "user@" + "a" * 64 + ".org", "user@example.org.", "user@localhost", "user%relay@example.org@evil.example",
        "@relay.example:user@example.org",
    )],
    Payload("send from quoted local part", "/send", send(**{"from": f'"app team"@{DOMAIN}'}), 400, "INVALID_ADDRESS"),
    # --- templates
    Payload("template subject CRLF (folded when rendered)", "/templates", {**TEMPLATE, "subject": INJECTION}, 201),
    Payload("template name CRLF", "/templates", {**TEMPLATE, "name": "a\r\nb"}, 201),
    Payload("template NUL", "/templates", {**TEMPLATE, "html_body": "a\x00"}, 400, "VALIDATION_ERROR"),
    Payload("template 10 MB body", "/templates", {**TEMPLATE, "html_body": "a" * TEN_MB}, 400, "TEMPLATE_TOO_LARGE"),
    Payload("template 10 MB name", "/templates", {**TEMPLATE, "name": "a" * TEN_MB}, 400, "VALIDATION_ERROR"),
    Payload("template JSON nested 10,000 deep", "/templates",
            b'{"name": "x", "variables": ' + b'{"a":' * 10_000 + b"1" + b"}" * 10_000 + b"}", 400, "MALFORMED_REQUEST"),
    Payload("template wrong types", "/templates", {**TEMPLATE, "subject": 5, "variables": "x"}, 400, "VALIDATION_ERROR"),
    Payload("template invalid UTF-8", "/templates", b'{"name": "\xc3\x28", "subject": "s"}', 400, "MALFORMED_REQUEST"),
    Payload("template duplicate key", "/templates", b'{"name": "a", "name": "b", "subject": "s", "text_body": "x"}', 400, "MALFORMED_REQUEST"),
    Payload("template code execution attempt", "/templates", {**TEMPLATE, "html_body": "{{ ''.__class__.__mro__[1].__subclasses__() }}"},
            400, "TEMPLATE_SYNTAX_ERROR"),
    # --- domains
    Payload("domain IDN", "/domains", {"domain": "bücher-neu.example"}, 201),
    Payload("domain trailing dot", "/domains", {"domain": "trailing.example.com."}, 201),
    *[Payload(f"domain {str(value)[:30]!r}", "/domains", {"domain": value}, 400, "VALIDATION_ERROR") for value in (
        "exa\r\nmple.com", "a" * TEN_MB, "xn--zz.example", "[127.0.0.1]", "127.0.0.1", "-bad.example", "a..b.example",
        "*.example.com", "localhost", "com", 5, None, ["example.com"], "a" * 64 + ".example", ("a" * 60 + ".") * 5 + "com",
    )],
    Payload("domain NUL", "/domains", {"domain": "exa\x00mple.com"}, 400, "VALIDATION_ERROR"),
    # --- suppressions
    Payload("suppression IDN domain", "/suppressions", {"email": "bob@bücher.example"}, 201),
    *[Payload(f"suppression {str(value)[:30]!r}", "/suppressions", {"email": value}, 400, "INVALID_ADDRESS") for value in (
        "bob@example.org\r\nX: y", "a" * TEN_MB, "bücher@bücher.example", '"quoted local"@example.org', "not-an-email", "",
    )],
    *[Payload(f"suppression {value!r}", "/suppressions", {"email": value}, 400, "VALIDATION_ERROR") for value in (5, None, ["a@example.org"])],
    Payload("suppression NUL", "/suppressions", {"email": "bob\x00@example.org"}, 400, "VALIDATION_ERROR"),
    Payload("suppression reason NUL", "/suppressions", {"email": "x@example.org", "reason": "a\x00"}, 400, "VALIDATION_ERROR"),
    Payload("suppression 10 MB reason", "/suppressions", {"email": "x@example.org", "reason": "a" * TEN_MB}, 400, "VALIDATION_ERROR"),
    # --- webhooks (DISPATCH_WEBHOOK_ALLOW_PRIVATE is off)
    *[Payload(f"webhook url {str(value)[:40]!r}", "/webhooks", {**WEBHOOK, "url": value}, 400, "VALIDATION_ERROR") for value in (
        "https://hooks.example.net/x\r\nX-Injected: yes", "https://" + "a" * TEN_MB, "http://127.0.0.1/x", "http://[::1]/x",
        "http://2130706433/x", "http://0177.0.0.1/x", "http://[::ffff:127.0.0.1]/x", "http://169.254.169.254/latest/meta-data",
        "file:///etc/passwd", "gopher://x", "https://user:pass@hooks.example.net/", "javascript:alert(1)", "", 5, None,
    )],
    Payload("webhook url NUL", "/webhooks", {**WEBHOOK, "url": "https://hooks.example.net/\x00"}, 400, "VALIDATION_ERROR"),
    *[Payload(f"webhook events {value!r}", "/webhooks", {**WEBHOOK, "events": value}, 400, "VALIDATION_ERROR")
      for value in (["nope"], "delivered", [5], [], None)],
    Payload("webhook secret CRLF", "/webhooks", {**WEBHOOK, "secret": "whsec_\r\nX"}, 400, "VALIDATION_ERROR"),
]


@pytest.fixture
def site(settings, monkeypatch, make_user, make_tenant, make_credential, dns_server):
    """A tenant with verified sending domains (one IDN) and a credential client."""
    import domains.services
    from domains.models import Domain

    settings.DISPATCH_WEBHOOK_ALLOW_PRIVATE = False
    monkeypatch.setattr(domains.services, "_new_dkim_keypair", shared_dkim_keypair)
    tenant = make_tenant(owner=make_user())
    for name in (DOMAIN, "bücher.example"):
        domain = domains.services.domain_create(tenant=tenant, name=name)
        Domain.objects.filter(pk=domain.pk).update(status=Domain.Status.VERIFIED, verified_at=timezone.now())
    credential = make_credential(tenant)
    world = type("Site", (), {})()
    world.tenant, world.user, world.client = tenant, tenant.owner, basic_client(credential.username, credential.password)
    return world


def post(client, url, body):
    if isinstance(body, bytes):
        return client.generic("POST", url, body, content_type="application/json")
    return client.post(url, body, format="json")


def stored_headers(tenant):
    """The header section of every stored message of the tenant, decrypted."""
    from dispatch_site import crypto
    from sending.models import Message

    for message in Message.objects.filter(tenant=tenant, body__isnull=False):
        mime = crypto.decrypt(bytes(message.body), message.body_associated_data)
        yield mime.split(b"\r\n\r\n", 1)[0]


@pytest.mark.parametrize("payload", PAYLOADS, ids=str)
def test_hostile_payload_gets_its_expected_answer(site, payload):
    before = tenant_state(site)
    response = post(site.client, f"/api/v1/dispatch/tenants/{site.tenant.id}{payload.path}", payload.body)
    assert response.status_code == payload.status, response.content[:500]
    if payload.status >= 400:
        error = response.json()["error"]
        assert error["code"] == payload.code and error["message"], error
        assert tenant_state(site) == before, "a refused request stored something"
    for header in stored_headers(site.tenant):
        assert b"\nX-Injected" not in header and b"\nBcc" not in header, header


def test_a_template_subject_with_crlf_is_sent_as_one_folded_header(site):
    base = f"/api/v1/dispatch/tenants/{site.tenant.id}"
    r = site.client.post(f"{base}/templates", {**TEMPLATE, "subject": "Hi {{ name }}" + INJECTION}, format="json")
    assert r.status_code == 201, r.content
    r = site.client.post(f"{base}/send", {"from": f"app@{DOMAIN}", "to": ["a@example.org"], "template_id": r.json()["data"]["id"],
                                          "template_variables": {"name": "Bob\r\nBcc: mallory@example.org"}}, format="json")
    assert r.status_code == 200, r.content
    (header,) = stored_headers(site.tenant)
    assert b"\nX-Injected" not in header and b"\nBcc" not in header


def test_idn_addresses_are_stored_in_ascii_form(site):
    from sending.models import Recipient

    r = site.client.post(f"/api/v1/dispatch/tenants/{site.tenant.id}/send", send(to=["user@bücher.example"]), format="json")
    assert r.status_code == 200, r.content
    assert Recipient.objects.get(tenant=site.tenant).domain == "xn--bcher-kva.example"


def test_a_request_body_over_the_request_limit_is_413(site, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
    before = tenant_state(site)
    r = post(site.client, f"/api/v1/dispatch/tenants/{site.tenant.id}/send", raw(json.dumps(send(text_body="a" * 2 * 1024 * 1024))))
    assert r.status_code == 413, r.content[:300]
    assert r.json()["error"]["code"] == "REQUEST_TOO_LARGE"
    assert tenant_state(site) == before


@pytest.mark.parametrize("region", [", ", "us-east-1\r\nX: y", "../../etc", "a" * 300])
def test_a_bad_dns_provider_region_is_a_400_not_a_crash(user, region):
    from moto import mock_aws

    from tests.conftest import jwt_client

    with mock_aws():
        r = jwt_client(user).post("/api/v1/user/dns-providers", {
            "provider": "route53", "access_key": "AKIAIOSFODNN7EXAMPLE", "secret_key": "x" * 40, "region": region,
        }, format="json")
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"]
