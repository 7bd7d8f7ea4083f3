"""Portal fixtures: logged-in browsers (Django test clients) and a little data to look at."""
import functools

import pytest
from django.test import Client
from django.utils import timezone

from domains.services import _new_dkim_keypair as _real_dkim_keypair


@pytest.fixture(autouse=True)
def _one_dkim_keypair(monkeypatch):
    """Every domain gets the same DKIM key pair: RSA generation is not what these tests are about."""
    import domains.services

    monkeypatch.setattr(domains.services, "_new_dkim_keypair", _shared_dkim_keypair)


@functools.lru_cache(maxsize=1)
def _shared_dkim_keypair():
    return _real_dkim_keypair()


def logged_in(user, *, csrf=False):
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


@pytest.fixture
def browser(user):
    """The tenant owner's logged-in client (CSRF not enforced; see csrf_browser)."""
    return logged_in(user)


@pytest.fixture
def csrf_browser(user):
    return logged_in(user, csrf=True)


@pytest.fixture
def page(tenant):
    """URL of a page of the user's tenant: page("domains") -> /portal/t/<id>/domains."""
    return lambda suffix="": f"/portal/t/{tenant.id}/{suffix}"


@pytest.fixture
def other_page(other_tenant):
    return lambda suffix="": f"/portal/t/{other_tenant.id}/{suffix}"


def make_verified_domain(tenant, name="example.com"):
    from domains.models import Domain
    from domains.services import domain_create

    domain = domain_create(tenant=tenant, name=name)
    Domain.objects.filter(pk=domain.pk).update(status=Domain.Status.VERIFIED, verified_at=timezone.now())
    domain.refresh_from_db()
    return domain


@pytest.fixture
def send():
    """Submit a message through the sending service (the one submission path)."""
    from sending.services import SendRequest, submit

    def send_one(tenant, **fields):
        fields.setdefault("from_", "sender@example.com")
        fields.setdefault("to", ["alice@example.org"])
        fields.setdefault("subject", "Hello Alice")
        fields.setdefault("html_body", "<p>Hi <b>Alice</b></p><script>alert(1)</script>")
        fields.setdefault("text_body", "Hi Alice")
        return submit(tenant=tenant, request=SendRequest(**fields))

    return send_one
