"""Per-minute rate limit in Redis: windows, atomicity, headers, fail-open."""
import logging
import socket
import threading
import time

import pytest

from dispatch_site.errors import QuotaExceeded, RateLimited
from tenants import limits, ratelimit
from tests.usage.conftest import message_payload

WINDOW = 1_800_000_000 // 60 * 60  # a minute boundary (epoch seconds)


def test_it_admits_recipients_up_to_the_limit_within_a_minute(tenant, on_plan):
    on_plan(tenant, rate=5)
    state = ratelimit.hit(tenant=tenant, count=3, now=WINDOW + 10)
    assert (state.limit, state.remaining, state.reset) == (5, 2, 50)
    assert ratelimit.hit(tenant=tenant, count=2, now=WINDOW + 20).remaining == 0
    with pytest.raises(RateLimited) as refused:
        ratelimit.hit(tenant=tenant, count=1, now=WINDOW + 45.5)
    assert refused.value.retry_after == 15
    assert refused.value.status == 429 and refused.value.smtp_reply == (451, "4.7.1")
    assert refused.value.message == "Rate limit of 5 recipients per minute exceeded; retry in 15 s."


def test_a_new_minute_starts_a_new_window(tenant, on_plan):
    on_plan(tenant, rate=2)
    ratelimit.hit(tenant=tenant, count=2, now=WINDOW + 59)
    with pytest.raises(RateLimited):
        ratelimit.hit(tenant=tenant, count=1, now=WINDOW + 59.9)
    assert ratelimit.hit(tenant=tenant, count=2, now=WINDOW + 60).remaining == 0


def test_a_refused_message_uses_up_nothing(tenant, on_plan):
    on_plan(tenant, rate=5)
    ratelimit.hit(tenant=tenant, count=4, now=WINDOW)
    with pytest.raises(RateLimited):
        ratelimit.hit(tenant=tenant, count=3, now=WINDOW)
    assert ratelimit.hit(tenant=tenant, count=1, now=WINDOW).remaining == 0


def test_a_message_with_more_recipients_than_the_limit_says_so(tenant, on_plan):
    on_plan(tenant, rate=2)
    with pytest.raises(RateLimited, match="This message has 3 recipients; your plan accepts 2 per minute."):
        ratelimit.hit(tenant=tenant, count=3, now=WINDOW)


def test_tenants_have_separate_windows(tenant, other_tenant, on_plan):
    on_plan(tenant, rate=1)
    on_plan(other_tenant, rate=1)
    ratelimit.hit(tenant=tenant, count=1, now=WINDOW)
    assert ratelimit.hit(tenant=other_tenant, count=1, now=WINDOW).remaining == 0


def test_concurrent_hits_admit_exactly_the_limit(tenant, on_plan):
    on_plan(tenant, rate=10)
    barrier, admitted, refused = threading.Barrier(25), [], []

    def run():
        barrier.wait()
        try:
            ratelimit.hit(tenant=tenant, count=1, now=WINDOW)
            admitted.append(1)
        except RateLimited:
            refused.append(1)

    threads = [threading.Thread(target=run) for _ in range(25)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert (len(admitted), len(refused)) == (10, 15)


def test_a_message_refused_by_the_quota_gives_its_rate_budget_back(tenant, on_plan):
    on_plan(tenant, quota=1, rate=5)
    limits.admit(tenant=tenant, count=1)
    with pytest.raises(QuotaExceeded):
        limits.admit(tenant=tenant, count=2)
    assert ratelimit.peek(tenant=tenant).remaining == 4


# --- HTTP -------------------------------------------------------------------------------------
def test_send_responses_carry_ratelimit_headers(api, tenant, verified_domain, send_url, on_plan):
    on_plan(tenant, rate=3)
    response = api.post(send_url, message_payload(to=["a@example.org", "b@example.org"]), format="json")
    assert response.status_code == 200
    assert response["RateLimit-Limit"] == "3"
    assert response["RateLimit-Remaining"] == "1"
    assert 1 <= int(response["RateLimit-Reset"]) <= 60


def test_over_the_limit_a_send_gets_429_with_retry_after(api, tenant, verified_domain, send_url, on_plan):
    on_plan(tenant, rate=2)
    assert api.post(send_url, message_payload(to=["a@example.org", "b@example.org"]), format="json").status_code == 200
    response = api.post(send_url, message_payload(to=["c@example.org"]), format="json")
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "RATE_LIMITED" and "2 recipients per minute" in error["message"]
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response["RateLimit-Limit"] == "2" and response["RateLimit-Remaining"] == "0"
    assert abs(int(response["RateLimit-Reset"]) - int(response["Retry-After"])) <= 1  # same window end


def test_error_responses_of_send_carry_ratelimit_headers_too(api, tenant, verified_domain, send_url, bulk_url, on_plan):
    on_plan(tenant, rate=7)
    response = api.post(send_url, {"from": "sender@example.com"}, format="json")
    assert response.status_code == 400
    assert (response["RateLimit-Limit"], response["RateLimit-Remaining"]) == ("7", "7")
    response = api.post(bulk_url, {"messages": [message_payload()]}, format="json")
    assert (response["RateLimit-Limit"], response["RateLimit-Remaining"]) == ("7", "6")


def test_send_bulk_checks_the_rate_limit_per_message(api, tenant, verified_domain, bulk_url, on_plan):
    on_plan(tenant, rate=3)
    messages = [message_payload(to=["a@example.org", "b@example.org"]), message_payload(to=["c@example.org", "d@example.org"]),
                message_payload(to=["e@example.org"])]
    data = api.post(bulk_url, {"messages": messages}, format="json").json()["data"]
    assert [r["success"] for r in data["results"]] == [True, False, True]
    assert data["results"][1]["code"] == "RATE_LIMITED"


# --- Redis unavailable --------------------------------------------------------------------------
@pytest.fixture
def redis_down(settings):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    ratelimit._redis.reset()
    yield
    ratelimit._redis.reset()


def test_with_redis_unreachable_the_limiter_fails_open_and_logs(redis_down, tenant, on_plan, caplog):
    on_plan(tenant, rate=1)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="tenants.ratelimit"):
        assert ratelimit.hit(tenant=tenant, count=5) is None
        assert ratelimit.hit(tenant=tenant, count=5) is None
    assert time.monotonic() - started < 1
    assert [r.message for r in caplog.records if "Redis unavailable" in r.message]
    assert len(caplog.records) == 1  # the back-off: one warning per outage, not one per message


def test_with_redis_unreachable_sends_go_through_and_the_quota_still_holds(redis_down, api, tenant, verified_domain, send_url, on_plan):
    on_plan(tenant, quota=2, rate=1)
    response = api.post(send_url, message_payload(to=["a@example.org", "b@example.org"]), format="json")
    assert response.status_code == 200
    assert "RateLimit-Limit" not in response
    assert api.post(send_url, message_payload(), format="json").json()["error"]["code"] == "QUOTA_EXCEEDED"


def test_a_send_reads_the_rate_window_once(api, tenant, verified_domain, send_url, on_plan, monkeypatch):
    """The headers come from the state the limiter saw when it counted the message, not from
    a second read of the window (one Redis round trip per send)."""
    on_plan(tenant, rate=5)

    def no_second_read(**kwargs):
        raise AssertionError("the window was read again for the headers")

    monkeypatch.setattr(ratelimit, "peek", no_second_read)
    response = api.post(send_url, message_payload(to=["a@example.org", "b@example.org"]), format="json")
    assert response.status_code == 200 and response["RateLimit-Remaining"] == "3"


def test_headers_of_a_request_that_counted_nothing_show_the_current_window(api, tenant, verified_domain, send_url, on_plan):
    on_plan(tenant, rate=9)
    assert api.post(send_url, message_payload(to=["a@example.org"]), format="json")["RateLimit-Remaining"] == "8"
    state = limits.admit(tenant=tenant, count=3)  # this thread counts 3 (its last state: 4 used)...
    ratelimit._redis.client().incrby(state.key, 2)  # ...and another process 2 more meanwhile
    response = api.post(send_url, {"from": "sender@example.com"}, format="json")
    assert response.status_code == 400 and response["RateLimit-Remaining"] == "3"
