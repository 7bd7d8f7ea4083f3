"""Fixtures for the usage tests: plans with small limits, a verified sending domain, a clean
rate limiter per test."""
import pytest

from tests.sending.conftest import (  # noqa: F401 - fixtures shared with the sending tests
    _fast_test_setup,
    bulk_url,
    make_verified_domain,
    message_payload,
    send_url,
    verified_domain,
)


@pytest.fixture(autouse=True)
def _fresh_rate_limiter():
    """Each test starts with no rate-limit windows and no remembered Redis outage."""
    import redis
    from django.conf import settings

    from tenants import ratelimit

    ratelimit._redis.reset()
    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(f"{ratelimit.KEY_PREFIX}:*"):
        client.delete(key)
    yield
    ratelimit._redis.reset()


@pytest.fixture
def make_plan(db):
    from tenants.models import Plan

    def make(*, quota=1000, rate=1000, overage=False, retention=14, slug=None):
        slug = slug or f"test-{quota}-{rate}-{int(overage)}-{retention}"
        plan, _ = Plan.objects.get_or_create(
            slug=slug,
            defaults=dict(name=slug, monthly_quota=quota, rate_limit_per_minute=rate, overage_allowed=overage,
                          log_retention_days=retention, is_public=False),
        )
        return plan

    return make


@pytest.fixture
def on_plan(make_plan):
    """Move a tenant to a plan with the given limits: on_plan(tenant, quota=3, rate=100)."""

    def move(tenant, *, overage_enabled=False, **limits):
        tenant.plan = make_plan(**limits)
        tenant.overage_enabled = overage_enabled
        tenant.save(update_fields=["plan", "overage_enabled"])
        return tenant

    return move


@pytest.fixture
def usage_url(tenant):
    return f"/api/v1/dispatch/tenants/{tenant.id}/usage"
