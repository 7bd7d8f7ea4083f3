"""Portal fixtures: logged-in browsers (Django test clients) and a little data to look at."""
import pytest
from django.test import Client

from tests.sending.conftest import _shared_dkim_keypair
from tests.sending.conftest import make_verified_domain as _verified_domain


@pytest.fixture(autouse=True)
def _one_dkim_keypair(monkeypatch):
    """Every domain gets the same DKIM key pair: RSA generation is not what these tests are about."""
    import domains.services

    monkeypatch.setattr(domains.services, "_new_dkim_keypair", _shared_dkim_keypair)


def logged_in(user, *, csrf=False):
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


@pytest.fixture
def browser(user):
    """The tenant owner's logged-in client (CSRF is checked in test_access.py)."""
    return logged_in(user)


@pytest.fixture
def page(tenant):
    """URL of a page of the user's tenant: page("domains") -> /portal/t/<id>/domains."""
    return lambda suffix="": f"/portal/t/{tenant.id}/{suffix}"


@pytest.fixture
def other_page(other_tenant):
    return lambda suffix="": f"/portal/t/{other_tenant.id}/{suffix}"


def make_verified_domain(tenant, name="example.com"):
    return _verified_domain(tenant, name)


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
