"""Secrets at rest (issue 14, item 9): every kind of secret is created through the real API or
service, then every row of every table is read raw and searched for the secret in clear text
and in its base64 and hex forms."""
import base64
import secrets

import pytest
from django.db import connection
from rest_framework.test import APIClient

from tests.conftest import basic_client, jwt_client

pytestmark = pytest.mark.django_db


def encodings(secret: bytes):
    """`secret` as it could appear inside any larger stored value: raw, hex, and base64
    (standard and url-safe) at each of the three alignments a prefix could give it."""
    forms = {secret, secret.hex().encode(), secret.hex().upper().encode()}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for shift in range(3):
            encoded = encode(b"\0" * shift + secret)
            # Drop the characters mixed with the unknown neighbours on either side.
            forms.add(encoded[4 if shift else 0 : -4])
    return {form for form in forms if len(form) >= 16}


def raw_rows():
    """(table, column, bytes) for every non-null value of every table."""
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f'SELECT * FROM "{table}"')
            columns = [c.name for c in cursor.description]
            for row in cursor.fetchall():
                for column, value in zip(columns, row):
                    if value is None:
                        continue
                    if isinstance(value, memoryview):
                        value = value.tobytes()
                    yield table, column, value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")


def find_in_database(needles: dict):
    """{name: secret bytes} -> ["name in table.column", ...] for every clear appearance."""
    searched = {name: encodings(secret) for name, secret in needles.items()}
    found, rows = [], 0
    for table, column, value in raw_rows():
        rows += 1
        lowered = value.lower()
        for name, forms in searched.items():
            if any(form in value or form.lower() in lowered for form in forms):
                found.append(f"{name} in {table}.{column}")
    return found, rows


def private_key_parts(pem: bytes) -> dict:
    """Pieces of an RSA private key that are not in its public key (the DER and PEM forms of
    the key contain them; base64 forms are searched by `encodings`)."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    numbers = load_pem_private_key(pem, password=None).private_numbers()
    as_bytes = lambda n: n.to_bytes((n.bit_length() + 7) // 8, "big")  # noqa: E731
    return {"DKIM private exponent": as_bytes(numbers.d)[8:72], "DKIM prime p": as_bytes(numbers.p)[8:56]}


@pytest.fixture
def everything_secret(settings, dns_server):
    """Creates one of each secret through the public interfaces; returns {name: bytes}."""
    from domains.models import Domain
    from domains.services import domain_dkim_private_key

    settings.CELERY_TASK_ALWAYS_EAGER = False
    marker = lambda label: f"{label}-{secrets.token_hex(16)}"  # noqa: E731
    needles = {}

    # A person registers with a password (Django's hasher), logs in, creates a tenant.
    password = marker("user-password")
    anon = APIClient()
    assert anon.post("/api/v1/auth/register", {"email": "owner@example.org", "password": password}, format="json").status_code == 201
    tokens = anon.post("/api/v1/auth/token", {"email": "owner@example.org", "password": password}, format="json").json()
    needles["user password"] = password.encode()
    # Refresh tokens are bearer secrets: the one issued at login, and the one a refresh rotates to.
    rotated = anon.post("/api/v1/auth/token/refresh", {"refresh": tokens["refresh"]}, format="json").json()["refresh"]
    for name, token in (("login refresh token", tokens["refresh"]), ("rotated refresh token", rotated)):
        needles[f"{name} signature"] = token.rsplit(".", 1)[1].encode()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    tenant_id = api.post("/api/v1/dispatch/tenants", {"tenant_name": "Secrets Inc", "plan": "starter"}, format="json").json()["data"]["id"]
    base = f"/api/v1/dispatch/tenants/{tenant_id}"

    # API/SMTP credential: the password is shown once.
    r = api.post(f"{base}/credentials", {"label": "ci"}, format="json")
    assert r.status_code == 201, r.content
    credential = r.json()["data"]
    needles["credential password"] = credential["password"].encode()

    # Webhook signing secrets: one chosen by the tenant, one generated.
    chosen = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    settings.DISPATCH_WEBHOOK_ALLOW_PRIVATE = True
    for number, secret in enumerate((chosen, None)):
        body = {"url": f"https://hooks{number}.example.net/in", "events": ["delivered", "bounced"]}
        if secret:
            body["secret"] = secret
        r = api.post(f"{base}/webhooks", body, format="json")
        assert r.status_code == 201, r.content
        shown = r.json()["data"]["secret"]
        needles[f"webhook secret {number}"] = shown.encode()
        # A standard-webhooks secret is base64 after "whsec_": the key bytes must not leak either.
        needles[f"webhook key bytes {number}"] = base64.b64decode(shown.removeprefix("whsec_"))

    # Sending domain with its DKIM key pair (the private key is generated by the service).
    r = api.post(f"{base}/domains", {"domain": "secrets.example.com"}, format="json")
    assert r.status_code == 201, r.content
    domain = Domain.objects.get(pk=r.json()["data"]["domain"]["id"])
    needles.update(private_key_parts(domain_dkim_private_key(domain)))
    Domain.objects.filter(pk=domain.pk).update(status=Domain.Status.VERIFIED)

    # A message by HTTP with a unique marker in the bodies and in a template variable, and
    # a message by the SMTP path (submit_raw) with its own marker; both with an attachment.
    html_marker, text_marker, variable_marker, raw_marker, attachment_marker = (
        marker("html-body"), marker("text-body"), marker("variable"), marker("smtp-body"), marker("attachment"),
    )
    sender = basic_client(credential["username"], credential["password"])
    r = sender.post(f"{base}/send", {
        "from": "app@secrets.example.com", "to": ["alice@example.org"], "subject": "Your receipt",
        "html_body": f"<p>{html_marker}</p>", "text_body": f"Hello {text_marker}",
        "attachments": [{"filename": "a.txt", "content_type": "text/plain",
                         "content": base64.b64encode(attachment_marker.encode()).decode()}],
    }, format="json")
    assert r.status_code == 200, r.content
    r = api.post(f"{base}/templates", {
        "name": "Receipt", "subject": "Receipt", "html_body": "<p>Code {{ code }}</p>", "text_body": "Code {{ code }}",
    }, format="json")
    assert r.status_code == 201, r.content
    template_id = r.json()["data"]["id"]
    r = sender.post(f"{base}/send", {
        "from": "app@secrets.example.com", "to": ["bob@example.org"], "template_id": template_id,
        "template_variables": {"code": variable_marker},
    }, format="json")
    assert r.status_code == 200, r.content
    needles.update({"HTML body": html_marker.encode(), "text body": text_marker.encode(),
                    "template variable": variable_marker.encode(), "attachment": attachment_marker.encode()})

    from sending.services import submit_raw
    from tenants.models import Tenant

    raw = (
        "From: app@secrets.example.com\r\nTo: carol@example.org\r\nSubject: raw\r\n"
        f"Content-Type: text/plain\r\n\r\nRaw body {raw_marker}\r\n"
    ).encode()
    submit_raw(tenant=Tenant.objects.get(pk=tenant_id), mail_from="app@secrets.example.com",
               rcpt_tos=["carol@example.org"], raw=raw)
    needles["SMTP message body"] = raw_marker.encode()

    # Delivery in capture mode keeps the signed copy of each message (Recipient.captured_message).
    from sending.delivery.engine import deliver
    from sending.models import Recipient

    settings.DISPATCH_DELIVERY_MODE = "capture"
    recipients = Recipient.objects.filter(tenant_id=tenant_id)
    deliver(list(recipients.values_list("id", flat=True)))
    assert recipients.filter(status="delivered", captured_message__isnull=False).count() == 3
    return needles, api, base


def test_no_secret_is_stored_in_clear_in_any_table(everything_secret):
    needles, _, _ = everything_secret
    found, rows = find_in_database(needles)
    assert rows > 100  # the scan really read the database
    assert found == []


def test_dns_provider_credentials_are_not_stored_in_clear(user):
    """Route 53 keys (moto plays AWS): the secret access key must only exist encrypted."""
    from moto import mock_aws

    secret_key = "wJalrX" + secrets.token_hex(17)
    with mock_aws():
        r = jwt_client(user).post("/api/v1/user/dns-providers", {
            "provider": "route53", "access_key": "AKIA" + secrets.token_hex(8).upper(),
            "secret_key": secret_key, "region": "us-east-1",
        }, format="json")
    assert r.status_code == 201, r.content
    assert secret_key not in r.content.decode()
    found, _ = find_in_database({"Route 53 secret key": secret_key.encode()})
    assert found == []


def test_the_scan_finds_a_secret_stored_in_clear(everything_secret):
    """Control: the same scan spots a marker planted in a text column and in a binary column."""
    from tenants.models import Tenant

    needles, _, _ = everything_secret
    planted = secrets.token_hex(16)
    Tenant.objects.update(name=f"leak {planted}")
    with connection.cursor() as cursor:
        cursor.execute('UPDATE "domains_domain" SET "dkim_private_key_encrypted" = %s',
                       [b"xx" + base64.b64encode(b"y" + needles["DKIM private exponent"]) + b"xx"])
    found, _ = find_in_database({"planted": planted.encode(), "DKIM private exponent": needles["DKIM private exponent"]})
    assert "planted in tenants_tenant.name" in found
    assert "DKIM private exponent in domains_domain.dkim_private_key_encrypted" in found
