import base64
import os
import smtplib
import time

import pytest
import redis

from smtp_gateway import handlers
from smtp_gateway.authlimit import KEY_PREFIX
from tenants.services import credential_revoke, tenant_set_status

pytestmark = pytest.mark.django_db


def b64(text):
    return base64.b64encode(text.encode()).decode()


def test_auth_before_tls_answers_538(raw_session, credential):
    session = raw_session(tls=False)
    session.command("EHLO client.test")
    assert session.login(credential).startswith("538 5.7.11")


def test_mail_before_auth_answers_530_with_and_without_tls(raw_session):
    plain = raw_session(tls=False)
    plain.command("EHLO client.test")
    assert plain.command("MAIL FROM:<a@example.com>").startswith("530 5.7.0")
    encrypted = raw_session(tls=True)
    assert encrypted.command("MAIL FROM:<a@example.com>").startswith("530 5.7.0")
    assert encrypted.command("RCPT TO:<victim@example.net>").startswith("530 5.7.0")
    assert encrypted.command("DATA").startswith("530 5.7.0")


def test_auth_plain_with_a_credential_succeeds(smtp_starttls, credential):
    client = smtp_starttls()
    code, text = client.login(credential.username, credential.password)
    assert code == 235 and text.startswith(b"2.7.0")


def test_auth_login_challenge_exchange_succeeds(raw_session, credential):
    session = raw_session(tls=True)
    assert session.command("AUTH LOGIN").startswith("334 ")
    assert session.command(b64(credential.username)).startswith("334 ")
    assert session.command(b64(credential.password)).startswith("235 2.7.0")
    assert session.command("AUTH PLAIN " + b64("x")).startswith("503 5.5.1")  # already authenticated


def test_auth_plain_without_initial_response_gets_a_challenge(raw_session, credential):
    session = raw_session(tls=True)
    assert session.command("AUTH PLAIN") == "334 "
    assert session.command(b64(f"\0{credential.username}\0{credential.password}")).startswith("235")


def test_wrong_password_answers_535_after_the_delay(start_gateway, client_tls, credential):
    gateway = start_gateway(auth_failure_delay=0.4)
    with smtplib.SMTP_SSL("127.0.0.1", gateway.tls_port, context=client_tls, timeout=10) as client:
        client.ehlo("client.test")
        started = time.monotonic()
        code, text = client.docmd("AUTH", "PLAIN " + b64(f"\0{credential.username}\0dp_sk_wrong"))
        assert (code, text[:5]) == (535, b"5.7.8")
        assert time.monotonic() - started >= 0.4


def test_unknown_user_answers_535(raw_session):
    session = raw_session(tls=True)
    assert session.command("AUTH PLAIN " + b64("\0nobody@mail.dispatch.test\0dp_sk_x")).startswith("535 5.7.8")


def test_failures_per_ip_reach_the_limit_then_421_and_disconnect(start_gateway, raw_session, credential):
    start_gateway(auth_failure_limit=3)
    bad = "AUTH PLAIN " + b64(f"\0{credential.username}\0dp_sk_wrong")
    session = raw_session(tls=True, source="127.0.0.3")
    assert session.command(bad).startswith("535")
    assert session.command(bad).startswith("535")
    assert session.command(bad).startswith("421 4.7.0")
    assert session.closed()
    # A new connection from that address is turned away even with the right password...
    again = raw_session(tls=True, source="127.0.0.3")
    assert again.login(credential).startswith("421 4.7.0")
    # ...while other clients are unaffected.
    assert raw_session(tls=True, source="127.0.0.4").login(credential).startswith("235")


def test_failure_count_lives_in_redis_with_an_expiry(start_gateway, raw_session, credential):
    start_gateway(auth_failure_window=120)
    session = raw_session(tls=True, source="127.0.0.5")
    session.command("AUTH PLAIN " + b64(f"\0{credential.username}\0dp_sk_wrong"))
    store = redis.Redis.from_url(os.environ["REDIS_URL"])
    key = KEY_PREFIX + "fail:ip:127.0.0.5"
    assert int(store.get(key)) == 1
    assert 0 < store.ttl(key) <= 120


def test_an_account_guessed_from_many_addresses_is_refused_except_from_its_known_sources(
        start_gateway, raw_session, credential):
    start_gateway(auth_failure_limit=3, auth_failure_limit_per_account=4)
    assert raw_session(tls=True, source="127.0.2.1").login(credential).startswith("235")  # the tenant's server
    bad = "AUTH PLAIN " + b64(f"\0{credential.username}\0dp_sk_wrong")
    for number in range(4):  # a guesser with a new address for every try
        assert raw_session(tls=True, source=f"127.0.3.{number + 1}").command(bad).startswith("535")
    stranger = raw_session(tls=True, source="127.0.3.100")
    assert stranger.login(credential).startswith("421 4.7.0")  # refused before the password is checked
    assert stranger.closed()
    # The same account without the @host part is the same account.
    name_only = b64(f"\0{credential.username.split('@')[0]}\0{credential.password}")
    assert raw_session(tls=True, source="127.0.3.101").command("AUTH PLAIN " + name_only).startswith("421")
    # The source that logged in before keeps working: no lockout of the tenant's own servers.
    assert raw_session(tls=True, source="127.0.2.1").login(credential).startswith("235")


def test_failures_are_still_limited_when_redis_is_down(start_gateway, raw_session, credential):
    start_gateway(auth_failure_limit=2, redis_url="redis://127.0.0.1:1/0")
    session = raw_session(tls=True, source="127.0.0.6")
    bad = "AUTH PLAIN " + b64(f"\0{credential.username}\0dp_sk_wrong")
    assert session.command(bad).startswith("535")
    assert session.command(bad).startswith("421 4.7.0")


def test_revoked_credential_is_refused(raw_session, credential, tenant):
    credential_revoke(tenant=tenant, credential_id=credential.pk)
    assert raw_session(tls=True).login(credential).startswith("535 5.7.8")


def test_credential_of_a_suspended_tenant_is_refused(raw_session, credential, tenant):
    tenant_set_status(tenant=tenant, status="suspended", reason="test")
    assert raw_session(tls=True).login(credential).startswith("550 5.7.1")


def test_revocation_reaches_an_already_authenticated_session(raw_session, credential, tenant, monkeypatch):
    monkeypatch.setattr(handlers, "CREDENTIAL_RECHECK_SECONDS", 0)
    session = raw_session(tls=True, login=credential)
    credential_revoke(tenant=tenant, credential_id=credential.pk)
    assert session.command("MAIL FROM:<a@example.com>").startswith("530 5.7.0")


def test_plain_for_another_identity_is_refused(raw_session, credential):
    token = b64(f"someone-else\0{credential.username}\0{credential.password}")
    assert raw_session(tls=True).command("AUTH PLAIN " + token).startswith("535 5.7.8")


def test_auth_protocol_errors_answer_5xx(raw_session):
    session = raw_session(tls=True)
    assert session.command("AUTH CRAM-MD5").startswith("504 5.5.4")
    assert session.command("AUTH PLAIN !!!notbase64").startswith("501 5.5.2")
    assert session.command("AUTH LOGIN").startswith("334")
    assert session.command("*").startswith("501")
    assert session.command("AUTH").startswith("501 5.5.4")
