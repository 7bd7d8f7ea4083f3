"""Fixtures for the sending tests: a verified sending domain and request helpers."""
import functools

import pytest
from django.utils import timezone


@pytest.fixture(autouse=True)
def _fast_test_setup(settings, monkeypatch):
    """One DKIM key pair for every domain: fixtures are not what these tests measure, and RSA
    key generation would dominate their run time (passwords are fast suite-wide already)."""
    import domains.services

    monkeypatch.setattr(domains.services, "_new_dkim_keypair", _shared_dkim_keypair)


@functools.lru_cache(maxsize=1)
def _shared_dkim_keypair():
    from cryptography.hazmat.primitives.asymmetric import rsa

    from domains.services import serialization, base64

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return base64.b64encode(public_der).decode("ascii"), private_pem


def make_verified_domain(tenant, name):
    """A sending domain created through the domains service (real DKIM key pair), then marked
    verified as a DNS check would (the DNS side is the domains tests' business)."""
    from domains.models import Domain
    from domains.services import domain_create

    domain = domain_create(tenant=tenant, name=name)
    Domain.objects.filter(pk=domain.pk).update(status=Domain.Status.VERIFIED, verified_at=timezone.now())
    domain.refresh_from_db()
    return domain


@pytest.fixture
def verified_domain(tenant):
    return make_verified_domain(tenant, "example.com")


@pytest.fixture
def send_url(tenant):
    return f"/api/v1/dispatch/tenants/{tenant.id}/send"


@pytest.fixture
def bulk_url(tenant):
    return f"/api/v1/dispatch/tenants/{tenant.id}/send-bulk"


def message_payload(**overrides):
    payload = {
        "from": "sender@example.com",
        "to": ["alice@example.org"],
        "subject": "Hello",
        "html_body": "<p>Hi Alice</p>",
        "text_body": "Hi Alice",
    }
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}
