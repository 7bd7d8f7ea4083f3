"""Shared fixtures: users, tenants, credentials and API clients for both auth methods."""
import base64
import itertools

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

_counter = itertools.count()


@pytest.fixture(autouse=True, scope="session")
def _development_tls_certificate():
    """The gateway's development certificate exists before any test builds a client context
    that trusts it (a gateway started later would otherwise make it only then)."""
    from django.conf import settings as django_settings

    from smtp_gateway.tls import ensure_certificate

    ensure_certificate(django_settings.DISPATCH_SMTP_TLS_CERT, django_settings.DISPATCH_SMTP_TLS_KEY,
                       hostname=django_settings.DISPATCH_HOSTNAME)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Tests create many users; a million PBKDF2 rounds each would dominate the run.
    (Production keeps Django's default hasher.)"""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_auth_failure_counters():
    """One test's failed logins must not lock the next test out (dispatch_site/api/throttling.py)."""
    from dispatch_site.api import throttling

    throttling.clear_all()


@pytest.fixture(autouse=True)
def _seeded_plans(db):
    from tenants.services import plans_seed

    plans_seed()


@pytest.fixture
def make_user(db):
    from tenants.models import User

    def make(email=None, password="correct horse battery staple"):
        return User.objects.create_user(email=email or f"user{next(_counter)}@example.org", password=password)

    return make


@pytest.fixture
def make_tenant(make_user):
    from tenants.services import tenant_create

    def make(owner=None, name=None, plan="starter"):
        return tenant_create(owner=owner or make_user(), name=name or f"Tenant {next(_counter)}", plan=plan)

    return make


@pytest.fixture
def make_credential(db):
    from tenants.services import credential_create, credential_username

    def make(tenant, label="test"):
        credential, password = credential_create(tenant=tenant, label=label)
        credential.username = credential_username(credential)
        credential.password = password
        return credential

    return make


def jwt_client(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


def basic_client(username, password):
    client = APIClient()
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    client.credentials(HTTP_AUTHORIZATION=f"Basic {token}")
    return client


@pytest.fixture
def user(make_user):
    return make_user()


@pytest.fixture
def tenant(make_tenant, user):
    return make_tenant(owner=user)


@pytest.fixture
def api(user):
    """JWT client of `user`, who owns `tenant`."""
    return jwt_client(user)


@pytest.fixture
def credential(make_credential, tenant):
    return make_credential(tenant)


@pytest.fixture
def cred_api(credential):
    """Basic-auth client with a credential of `tenant`."""
    return basic_client(credential.username, credential.password)


@pytest.fixture
def other_user(make_user):
    return make_user()


@pytest.fixture
def other_tenant(make_tenant, other_user):
    return make_tenant(owner=other_user)


@pytest.fixture
def other_api(other_user):
    """JWT client of a different user, who owns `other_tenant` (cross-tenant tests)."""
    return jwt_client(other_user)


@pytest.fixture
def other_cred_api(make_credential, other_tenant):
    cred = make_credential(other_tenant)
    return basic_client(cred.username, cred.password)


@pytest.fixture(scope="session")
def _test_redis():
    import os

    import redis

    return redis.Redis.from_url(os.environ["REDIS_URL"])


@pytest.fixture(autouse=True)
def _clean_redis(_test_redis):
    """Tests own their Redis database (15 by default); each test starts from empty, so rate
    limit and login-failure counters of one test never leak into the next."""
    _test_redis.flushdb()


@pytest.fixture(scope="session")
def _dns_server_instance():
    from tests.support.dns_server import DNSTestServer

    server = DNSTestServer().start()
    yield server
    server.stop()


@pytest.fixture
def dns_server(_dns_server_instance, settings):
    """The loopback authoritative DNS server (tests/support/dns_server.py), emptied for this test;
    DISPATCH_DNS_NAMESERVERS points at it."""
    _dns_server_instance.clear()
    settings.DISPATCH_DNS_NAMESERVERS = [("127.0.0.1", _dns_server_instance.port)]
    yield _dns_server_instance
    _dns_server_instance.clear()
