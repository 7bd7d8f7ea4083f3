"""Brute force on API logins (HTTP Basic credentials, JWT password logins) is limited per source
IP and per account; forged JWTs are refused (issue 14, item 10)."""
import logging
import threading
import time

import jwt
import pytest
from django.test import RequestFactory
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from dispatch_site.api import throttling
from tests.conftest import basic_client

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


def login(email, password, ip="127.0.0.1"):
    return APIClient(REMOTE_ADDR=ip).post("/api/v1/auth/token", {"email": email, "password": password}, format="json")


def basic_get(username, password, ip="127.0.0.1"):
    client = basic_client(username, password)
    client.defaults["REMOTE_ADDR"] = ip
    return client.get("/api/v1/dispatch/tenants")


def assert_rate_limited(response):
    assert response.status_code == 429, response.content
    body = response.json()
    assert body["error"]["code"] == "RATE_LIMITED"
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 900
    assert body["error"]["details"]["retry_after"] == retry_after
    assert "access" not in body and "data" not in body


@pytest.fixture
def limits(settings):
    def set_limits(per_ip=100, per_account=100, window=900):
        settings.DISPATCH_AUTH_FAILURE_LIMIT_PER_IP = per_ip
        settings.DISPATCH_AUTH_FAILURE_LIMIT_PER_ACCOUNT = per_account
        settings.DISPATCH_AUTH_FAILURE_WINDOW_SECONDS = window

    return set_limits


def test_jwt_logins_are_refused_after_too_many_failures_for_one_account(limits, user, make_user):
    limits(per_account=3)
    for _ in range(3):
        assert login(user.email, "wrong password").status_code == 401
    assert_rate_limited(login(user.email, "wrong password"))
    # Even the right password is refused now: a correct guess must not be recognisable.
    assert_rate_limited(login(user.email, PASSWORD))
    # Another IP is refused too (the account is the target), and the email's case does not matter.
    assert_rate_limited(login(user.email.upper(), PASSWORD, ip="10.1.2.3"))
    # Other accounts from the same IP are not affected.
    other = make_user()
    assert login(other.email, PASSWORD).status_code == 200


def test_jwt_logins_are_refused_after_too_many_failures_from_one_ip(limits, user, make_user):
    limits(per_ip=4)
    for n in range(4):
        assert login(f"nobody{n}@example.org", "guess").status_code == 401
    assert_rate_limited(login(user.email, PASSWORD))
    # The same account from another address still works.
    assert login(user.email, PASSWORD, ip="10.9.9.9").status_code == 200


def test_basic_auth_is_refused_after_too_many_failures_for_one_credential(limits, credential):
    limits(per_account=3)
    for _ in range(3):
        assert basic_get(credential.username, "dp_sk_guess").status_code == 401
    assert_rate_limited(basic_get(credential.username, "dp_sk_guess"))
    assert_rate_limited(basic_get(credential.username, credential.password, ip="10.4.4.4"))


def test_basic_auth_is_refused_after_too_many_failures_from_one_ip(limits, credential):
    limits(per_ip=3)
    for n in range(3):
        assert basic_get(f"guess{n}", "dp_sk_guess").status_code == 401
    assert_rate_limited(basic_get(credential.username, credential.password))
    assert basic_get(credential.username, credential.password, ip="10.5.5.5").status_code == 200


def test_a_successful_login_resets_no_counter(limits, user):
    """Otherwise a guesser interleaving with the owner's logins would get a fresh budget each time."""
    limits(per_account=3, per_ip=4)
    for _ in range(2):
        assert login(user.email, "wrong password").status_code == 401
    assert login(user.email, PASSWORD).status_code == 200
    assert login(user.email, "wrong password").status_code == 401
    # The account has 3 failures: a new address is refused; the known one is not...
    assert_rate_limited(login(user.email, PASSWORD, ip="10.7.7.7"))
    assert login(user.email, PASSWORD).status_code == 200
    # ...until its own failures reach the per-IP limit.
    assert login(user.email, "wrong password").status_code == 401
    assert_rate_limited(login(user.email, PASSWORD))


def test_a_source_that_logged_in_before_is_not_locked_out_by_failures_elsewhere(limits, user):
    """The account limit must not let a stranger lock the owner out: the owner's known address
    keeps working, every other address is refused."""
    limits(per_account=3)
    assert login(user.email, PASSWORD, ip="10.0.0.1").status_code == 200  # the owner's office
    for number in range(5):
        assert login(user.email, "guess", ip=f"10.66.0.{number}").status_code in (401, 429)
    for _ in range(3):
        assert login(user.email, PASSWORD, ip="10.0.0.1").status_code == 200
    assert_rate_limited(login(user.email, PASSWORD, ip="10.0.0.2"))


def test_a_credentials_own_servers_keep_working_while_someone_guesses_its_password(limits, credential):
    limits(per_account=3)
    assert basic_get(credential.username, credential.password, ip="192.0.2.10").status_code == 200
    for number in range(5):
        assert basic_get(credential.username, "dp_sk_guess", ip=f"198.51.100.{number}").status_code in (401, 429)
    assert basic_get(credential.username, credential.password, ip="192.0.2.10").status_code == 200
    assert_rate_limited(basic_get(credential.username, credential.password, ip="192.0.2.11"))


def test_the_known_source_mark_is_written_once_not_on_every_request(limits, credential):
    client = throttling._redis.client()
    for _ in range(3):
        assert basic_get(credential.username, credential.password).status_code == 200
    (known,) = [k for k in client.scan_iter(f"{throttling.KEY_PREFIX}:known:*")]
    assert throttling.KNOWN_SOURCE_TTL - 60 < client.ttl(known) <= throttling.KNOWN_SOURCE_TTL
    assert known.decode().endswith(":127.0.0.1") and credential.username not in known.decode()


def test_the_block_ends_when_the_window_has_passed(limits, user):
    limits(per_account=2, window=1)
    for _ in range(2):
        assert login(user.email, "wrong password").status_code == 401
    assert_rate_limited(login(user.email, PASSWORD))
    time.sleep(1.2)
    assert login(user.email, PASSWORD).status_code == 200


def test_concurrent_failures_are_all_counted(limits):
    """INCR in Redis: 8 threads x 25 failures = exactly 200, never a lost update."""
    limits(per_ip=1000, per_account=1000)
    request = RequestFactory().post("/api/v1/auth/token", REMOTE_ADDR="192.0.2.77")

    def fail_many():
        for _ in range(25):
            throttling.LoginAttempt(request, "victim@example.org").failed()

    threads = [threading.Thread(target=fail_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client = throttling._redis.client()
    counters = throttling.LoginAttempt(request, "victim@example.org").counters
    assert [int(client.get(key)) for key in counters] == [200, 200]
    assert all(0 < client.ttl(key) <= 900 for key in counters)


def test_no_account_names_are_stored_in_redis(user):
    login(user.email, "wrong password")
    keys = [k.decode() for k in throttling._redis.client().scan_iter(f"{throttling.KEY_PREFIX}:*")]
    assert len(keys) == 2
    assert not any(user.email in k or user.email.split("@")[0] in k for k in keys)


def test_logins_fail_open_quickly_when_redis_is_down(limits, settings, user, caplog):
    limits(per_account=1, per_ip=1)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    throttling._redis.reset()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="dispatch_site.api.throttling"):
        for _ in range(3):
            assert login(user.email, "wrong password").status_code == 401
        assert login(user.email, PASSWORD).status_code == 200
    assert time.monotonic() - started < 2
    assert any("Redis unavailable" in r.getMessage() for r in caplog.records)


def test_missing_or_malformed_login_bodies_are_not_counted(limits, user):
    limits(per_ip=2)
    for body in ({}, {"email": user.email}, ["not", "an", "object"]):
        r = APIClient().post("/api/v1/auth/token", body, format="json")
        assert r.status_code == 400 and r.json()["error"]["code"] == "VALIDATION_ERROR"
    assert login(user.email, PASSWORD).status_code == 200


# --- forged tokens ------------------------------------------------------------------------------
def _claims(user):
    return dict(RefreshToken.for_user(user).access_token.payload)


def test_jwt_signed_with_another_key_is_refused(user, tenant):
    forged = jwt.encode(_claims(user), "not-the-servers-secret-key-0123456789abcdef", algorithm="HS256")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {forged}")
    r = client.get(f"/api/v1/dispatch/tenants/{tenant.id}")
    assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED"
    assert str(tenant.id) not in r.content.decode()


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # our key is short for HS512: the point
def test_jwt_with_a_different_algorithm_is_refused_even_with_the_right_key(settings, user):
    for algorithm in ("HS512", "HS384"):
        forged = jwt.encode(_claims(user), settings.SIMPLE_JWT["SIGNING_KEY"], algorithm=algorithm)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {forged}")
        r = client.get("/api/v1/dispatch/tenants")
        assert r.status_code == 401, algorithm


def test_jwt_signed_with_an_rsa_key_is_refused(user):
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(_claims(user), key, algorithm="RS256")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert client.get("/api/v1/dispatch/tenants").status_code == 401


def test_a_genuine_token_still_works(user):
    """Control for the forgery tests: the same claims signed by the server are accepted."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    assert client.get("/api/v1/dispatch/tenants").status_code == 200


# --- the other password logins: portal and admin forms -------------------------------------------
@pytest.mark.parametrize("url", ["/portal/login", "/admin/login/"])
def test_password_login_forms_are_limited_like_the_api(limits, user, client, url):
    limits(per_account=3)
    user.is_staff = url.startswith("/admin")
    user.save()
    for _ in range(3):
        r = client.post(url, {"username": user.email, "password": "wrong password"})
        assert r.status_code == 200 and not r.wsgi_request.user.is_authenticated
    r = client.post(url, {"username": user.email, "password": PASSWORD})
    assert r.status_code == 200 and not r.wsgi_request.user.is_authenticated, "logged in past the limit"
    # The API token endpoint counts the same failures.
    assert_rate_limited(login(user.email, PASSWORD))


def test_jwt_and_form_failures_add_up(limits, user, client):
    limits(per_account=4)
    for _ in range(2):
        assert login(user.email, "wrong password").status_code == 401
        client.post("/portal/login", {"username": user.email, "password": "wrong password"})
    assert_rate_limited(login(user.email, PASSWORD))


def test_a_portal_login_from_a_known_source_still_works_while_the_account_is_attacked(limits, user, client):
    limits(per_account=2)
    assert login(user.email, PASSWORD).status_code == 200  # 127.0.0.1 is now a known source
    for number in range(3):
        login(user.email, "guess", ip=f"203.0.113.{number}")
    r = client.post("/portal/login", {"username": user.email, "password": PASSWORD})
    assert r.status_code == 302 and r.wsgi_request.user.is_authenticated


@pytest.mark.parametrize("url", ["/portal/password", "/admin/password_change/"])
def test_password_change_forms_check_the_old_password_under_the_same_limits(limits, user, client, url):
    """Someone holding a session (a browser left logged in) must not get an unlimited oracle
    for the account's password through the old-password field."""
    limits(per_account=3)
    user.is_staff = url.startswith("/admin")
    user.save()
    client.force_login(user)
    new = "another long passphrase 42"
    change = lambda old: client.post(url, {"old_password": old, "new_password1": new, "new_password2": new})  # noqa: E731
    for _ in range(3):
        r = change("wrong password")
        assert r.status_code == 200 and b"incorrectly" in r.content
    r = change(PASSWORD)
    assert r.status_code == 200, "password changed past the limit"
    assert b"Too many failed authentication attempts" in r.content
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert_rate_limited(login(user.email, PASSWORD))  # the same counter as every password login


def register(email, ip="127.0.0.1"):
    return APIClient(REMOTE_ADDR=ip).post("/api/v1/auth/register", {"email": email, "password": PASSWORD}, format="json")


def test_sign_ups_are_limited_per_source_ip(settings, user):
    from django.contrib.auth import get_user_model

    settings.DISPATCH_SIGNUP_LIMIT_PER_IP, settings.DISPATCH_SIGNUP_WINDOW_SECONDS = 3, 600
    assert register("one@example.org").status_code == 201
    assert register(user.email).status_code == 409  # probing for existing accounts counts too
    assert register("two@example.org").status_code == 201
    refused = register("three@example.org")
    assert_rate_limited(refused)
    assert 590 <= int(refused["Retry-After"]) <= 600  # a fixed window from the first attempt
    assert not get_user_model().objects.filter(email="three@example.org").exists()
    assert register("three@example.org", ip="192.0.2.7").status_code == 201  # another source is not affected

    # The portal's sign-up form shares the limit of its source.
    from django.test import Client

    page = Client(REMOTE_ADDR="127.0.0.1").post("/portal/signup", {"email": "four@example.org", "password": PASSWORD})
    assert page.status_code == 200 and b"Too many sign-ups" in page.content
    assert not get_user_model().objects.filter(email="four@example.org").exists()


def test_sign_ups_are_not_refused_when_redis_is_down(settings, monkeypatch):
    settings.DISPATCH_SIGNUP_LIMIT_PER_IP = 1
    monkeypatch.setattr(throttling._redis, "client", lambda: None)  # what AdvisoryRedis answers while Redis is away
    assert register("a@example.org").status_code == 201
    assert register("b@example.org").status_code == 201
