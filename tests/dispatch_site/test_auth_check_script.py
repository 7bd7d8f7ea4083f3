"""The login limiter's check (dispatch_site/api/throttling.py) reads its counters in one script:
it answers exactly what GET and TTL of each key answer, with and without an account."""
import pytest
from django.test import RequestFactory

from dispatch_site.api import throttling


@pytest.fixture
def attempt():
    throttling.clear_all()
    request = RequestFactory().get("/", REMOTE_ADDR="192.0.2.7")
    yield throttling.LoginAttempt(request, "Someone@Example.org")
    throttling.clear_all()


def direct_reads(client, attempt):
    return [client.get(attempt.ip_key), client.ttl(attempt.ip_key), client.get(attempt.account_key),
            client.ttl(attempt.account_key), client.ttl(attempt.known_key)]


def test_absent_counters_read_as_nothing(attempt):
    client = throttling._redis.client()
    keys = [attempt.ip_key, attempt.account_key, attempt.known_key]
    assert throttling._read_counters(keys) == direct_reads(client, attempt) == [None, -2, None, -2, -2]
    assert throttling._read_counters([attempt.ip_key]) == [None, -2]


def test_counters_and_ttls_read_as_the_commands_give_them(attempt):
    client = throttling._redis.client()
    client.set(attempt.ip_key, 3, ex=100)
    client.set(attempt.account_key, 7, ex=200)
    client.set(attempt.known_key, 1, ex=300)
    client.set(f"{throttling.KEY_PREFIX}:persistent-test", 1)
    keys = [attempt.ip_key, attempt.account_key, attempt.known_key]
    assert throttling._read_counters(keys) == direct_reads(client, attempt) == [b"3", 100, b"7", 200, 300]
    assert throttling._read_counters([attempt.ip_key]) == [b"3", 100]
    # A key without expiry answers -1 (the known-source mark is then never renewed).
    persistent = f"{throttling.KEY_PREFIX}:persistent-test"
    assert throttling._read_counters([attempt.ip_key, attempt.account_key, persistent])[4] == -1


def test_the_check_refuses_from_the_script_answer(attempt, settings):
    client = throttling._redis.client()
    client.set(attempt.account_key, settings.DISPATCH_AUTH_FAILURE_LIMIT_PER_ACCOUNT, ex=60)
    with pytest.raises(throttling.RateLimited):
        attempt.check()
    client.set(attempt.known_key, 1, ex=60)  # a known source of the account is spared
    attempt.check()


def test_redis_unavailable_fails_open(attempt, monkeypatch):
    monkeypatch.setattr(throttling._redis, "client", lambda: None)
    assert throttling._read_counters([attempt.ip_key]) is None
    attempt.check()
