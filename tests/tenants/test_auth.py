import base64

import pytest
from rest_framework.test import APIClient

from tests.conftest import basic_client, jwt_client

pytestmark = pytest.mark.django_db


def test_it_registers_and_issues_tokens():
    client = APIClient()
    r = client.post("/api/v1/auth/register", {"email": "New@Example.org", "password": "a-long-enough-passphrase"}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["data"]["email"] == "new@example.org"
    r = client.post("/api/v1/auth/token", {"email": "new@example.org", "password": "a-long-enough-passphrase"}, format="json")
    assert r.status_code == 200
    tokens = r.json()
    assert {"access", "refresh"} <= tokens.keys()
    me = APIClient()
    me.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert me.get("/api/v1/dispatch/tenants").status_code == 200


def test_it_rotates_refresh_tokens_and_blacklists_the_old_one(user):
    client = APIClient()
    tokens = client.post("/api/v1/auth/token", {"email": user.email, "password": "correct horse battery staple"}, format="json").json()
    r = client.post("/api/v1/auth/token/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert r.status_code == 200 and "refresh" in r.json()
    again = client.post("/api/v1/auth/token/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "UNAUTHORIZED"


def test_it_rejects_weak_passwords_and_duplicate_emails(user):
    client = APIClient()
    r = client.post("/api/v1/auth/register", {"email": "x@example.org", "password": "short"}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "VALIDATION_ERROR"
    r = client.post("/api/v1/auth/register", {"email": user.email.upper(), "password": "a-long-enough-passphrase"}, format="json")
    assert r.status_code == 409 and r.json()["error"]["code"] == "EMAIL_TAKEN"


def test_bad_login_is_401_in_the_envelope(user):
    r = APIClient().post("/api/v1/auth/token", {"email": user.email, "password": "wrong password"}, format="json")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "UNAUTHORIZED"


def test_inactive_users_tokens_are_refused(user):
    client = jwt_client(user)
    user.is_active = False
    user.save()
    r = client.get("/api/v1/dispatch/tenants")
    assert r.status_code == 401


def test_forged_jwt_with_alg_none_is_refused(user):
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    payload = base64.urlsafe_b64encode(f'{{"user_id":"{user.id}","token_type":"access","exp":9999999999}}'.encode()).rstrip(b"=").decode()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {header}.{payload}.")
    r = client.get("/api/v1/dispatch/tenants")
    assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED"


def test_basic_auth_with_wrong_password_or_garbage_is_401(credential):
    assert basic_client(credential.username, "dp_sk_wrong").get("/api/v1/dispatch/tenants").status_code == 401
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic !!!notbase64")
    r = client.get("/api/v1/dispatch/tenants")
    assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED"


def test_unauthenticated_requests_are_401():
    r = APIClient().get("/api/v1/dispatch/plans")
    assert r.status_code == 401
    assert r.json() == {"error": {"code": "UNAUTHORIZED", "message": "Authentication credentials were not provided."}}


def test_a_refresh_token_of_a_deleted_user_is_401_not_a_server_error(user):
    refresh = APIClient().post("/api/v1/auth/token", {"email": user.email, "password": "correct horse battery staple"},
                               format="json").json()["refresh"]
    user.delete()
    r = APIClient().post("/api/v1/auth/token/refresh", {"refresh": refresh}, format="json")
    assert r.status_code == 401, r.content
    assert r.json()["error"]["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize("where", ["portal", "admin", "model"])
def test_changing_the_password_ends_every_refresh_token_of_the_user(user, make_user, where):
    """A stolen refresh token rotates forever (each refresh extends it); changing the password
    is how a person takes their account back, so it ends every token issued before, as Django
    ends the person's other sessions. Other users' tokens are untouched."""
    from django.test import Client

    old, new = "correct horse battery staple", "another long passphrase 42"
    login = lambda who, password: APIClient().post(  # noqa: E731
        "/api/v1/auth/token", {"email": who.email, "password": password}, format="json").json()["refresh"]
    stolen, bystander = login(user, old), login(make_user(), old)
    if where == "portal":
        client = Client()
        client.force_login(user)
        r = client.post("/portal/password", {"old_password": old, "new_password1": new, "new_password2": new})
        assert r.status_code == 302
    elif where == "admin":
        client = Client()
        client.force_login(type(user).objects.create_superuser(email="root@example.org", password=old))
        r = client.post(f"/admin/tenants/user/{user.pk}/password/", {"password1": new, "password2": new})
        assert r.status_code == 302, r.content[:2000]
    else:
        user.set_password(new)
        user.save()
    refresh = lambda token: APIClient().post("/api/v1/auth/token/refresh", {"refresh": token}, format="json")  # noqa: E731
    assert refresh(stolen).status_code == 401
    assert refresh(bystander).status_code == 200
    assert refresh(login(user, new)).status_code == 200  # tokens issued after the change work


def test_refresh_tokens_are_kept_without_their_signature_and_older_rows_are_stripped(user):
    """The blacklist needs only a token's jti; what the database (and the admin) holds must not
    be a usable refresh token. The migration strips rows stored before."""
    import importlib

    from django.apps import apps
    from rest_framework_simplejwt.token_blacklist.models import OutstandingToken
    from rest_framework_simplejwt.tokens import RefreshToken

    token = str(RefreshToken.for_user(user))
    stored = OutstandingToken.objects.get(user=user)
    assert stored.token == token.rsplit(".", 1)[0] + "." and stored.jti
    OutstandingToken.objects.filter(pk=stored.pk).update(token=token)  # a row from before
    importlib.import_module("tenants.migrations.0003_outstanding_tokens_unsigned").strip_signatures(apps, None)
    assert OutstandingToken.objects.get(pk=stored.pk).token == token.rsplit(".", 1)[0] + "."
    r = APIClient().post("/api/v1/auth/token/refresh", {"refresh": token}, format="json")
    assert r.status_code == 200  # the token itself still works, and rotation still blacklists it
    assert APIClient().post("/api/v1/auth/token/refresh", {"refresh": token}, format="json").status_code == 401


@pytest.mark.django_db(transaction=True)
def test_two_refreshes_racing_with_one_token_get_one_new_pair(user, monkeypatch):
    """Rotation makes a refresh token single-use: a thief and the user refreshing with the same
    token at the same moment must not both get a pair. Both requests are held just after the
    library's blacklist check, so both have passed it before either blacklists the token."""
    import threading

    from rest_framework_simplejwt.tokens import BlacklistMixin

    from tests.support.concurrency import run_concurrently

    token = APIClient().post("/api/v1/auth/token", {"email": user.email, "password": "correct horse battery staple"},
                             format="json").json()["refresh"]
    both_checked = threading.Barrier(2, timeout=10)
    check_blacklist = BlacklistMixin.check_blacklist

    def check_then_wait(self):
        check_blacklist(self)
        both_checked.wait()

    monkeypatch.setattr(BlacklistMixin, "check_blacklist", check_then_wait)
    answers = run_concurrently(
        2, lambda index: APIClient().post("/api/v1/auth/token/refresh", {"refresh": token}, format="json"))
    assert sorted(getattr(r, "status_code", 0) for r in answers) == [200, 401], answers
    assert [r for r in answers if r.status_code == 401][0].json()["error"]["code"]
