"""Per-tenant, per-minute rate limit on accepted recipients (plan.rate_limit_per_minute),
shared by every web and SMTP process through Redis.

Fixed one-minute windows aligned to the clock (key per tenant and window start). A Lua script
reads the window's count and adds the message's recipients only when they fit, in one atomic
step: concurrent submissions can never overshoot, and a refused message uses up nothing. The
price of fixed windows is a possible burst of up to twice the limit across a window boundary;
in exchange the RateLimit-Reset / Retry-After values are exact.

Redis trouble never stops sending: the limiter fails open (a warning is logged, the monthly
quota is still enforced by the database) and leaves Redis alone for a few seconds, so a dead
Redis costs one short timeout, not one per message.
"""
import logging
import math
import time
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings
from redis.exceptions import RedisError

from dispatch_site.advisory_redis import AdvisoryRedis
from dispatch_site.errors import RateLimited

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60
KEY_PREFIX = "dispatch:ratelimit"
REDIS_RETRY_AFTER = 5.0  # seconds Redis is left alone after a failure

# KEYS[1] window key; ARGV: count, limit, ttl. Returns {admitted (0/1), used after the call}.
_HIT = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local count = tonumber(ARGV[1])
if used + count > tonumber(ARGV[2]) then
  return {0, used}
end
used = redis.call('INCRBY', KEYS[1], count)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return {1, used}
"""


@dataclass(frozen=True)
class RateState:
    limit: int
    used: int
    reset: int  # seconds until the window ends
    key: str

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)

    def headers(self) -> dict:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
        }


# The window state the last `hit` of this request saw: the send views' RateLimit-* headers use
# it instead of reading the window again (one Redis round trip less per request). Cleared by
# `refund` (the count changed) and by `response_headers` (one request's state never reaches the
# next request served by the same thread).
_last_state: ContextVar = ContextVar("dispatch_rate_state", default=None)

_redis = AdvisoryRedis("rate limiter", timeout=lambda: settings.DISPATCH_RATE_LIMIT_REDIS_TIMEOUT,
                       quiet_after_failure=REDIS_RETRY_AFTER)
_hit_script = None


def _hit(client, *, keys, args):
    global _hit_script
    if _hit_script is None:
        _hit_script = client.register_script(_HIT)
    return _hit_script(keys=keys, args=args, client=client)


def _window(tenant, now):
    start = int(now // WINDOW_SECONDS) * WINDOW_SECONDS
    reset = max(math.ceil(start + WINDOW_SECONDS - now), 1)
    # The {tenant} hash tag keeps a tenant's keys in one Redis Cluster slot.
    return f"{KEY_PREFIX}:{{{tenant.pk}}}:{start}", reset


def hit(*, tenant, count: int, now: float | None = None) -> RateState | None:
    """Count `count` recipients in this minute's window, or raise RateLimited (429 with
    Retry-After; SMTP 451 4.7.1). Returns the window state, or None when Redis is unavailable
    (fail open)."""
    limit = tenant.plan.rate_limit_per_minute
    key, reset = _window(tenant, time.time() if now is None else now)
    client = _redis.client()
    if client is None:
        return None
    try:
        admitted, used = _hit(client, keys=[key], args=[count, limit, WINDOW_SECONDS * 2])
    except (RedisError, OSError) as exc:
        _redis.failed(exc)
        return None
    state = RateState(limit=limit, used=int(used), reset=reset, key=key)
    _last_state.set(state)
    if not admitted:
        if count > limit:
            message = f"This message has {count} recipients; your plan accepts {limit} per minute."
        else:
            message = f"Rate limit of {limit} recipients per minute exceeded; retry in {reset} s."
        error = RateLimited(message, retry_after=reset)
        error.rate_state = state
        raise error
    return state


def refund(state: RateState | None, count: int) -> None:
    """Give back recipients counted by `hit` for a message that was refused afterwards
    (e.g. by the monthly quota)."""
    if state is None or count <= 0:
        return
    _last_state.set(None)
    client = _redis.client()
    if client is None:
        return
    try:
        client.decrby(state.key, count)
    except (RedisError, OSError) as exc:
        _redis.failed(exc)


def peek(*, tenant, now: float | None = None) -> RateState | None:
    """This minute's window without counting anything; None when Redis is unavailable."""
    key, reset = _window(tenant, time.time() if now is None else now)
    client = _redis.client()
    if client is None:
        return None
    try:
        used = int(client.get(key) or 0)
    except (RedisError, OSError) as exc:
        _redis.failed(exc)
        return None
    return RateState(limit=tenant.plan.rate_limit_per_minute, used=used, reset=reset, key=key)


def forget_last_state() -> None:
    _last_state.set(None)


def response_headers(*, tenant) -> dict:
    """RateLimit-Limit / -Remaining / -Reset for a send response; empty when Redis is unavailable.
    Uses the state this request's last `hit` saw when it is of this tenant's current window."""
    state = _last_state.get()
    _last_state.set(None)
    if state is None or state.key != _window(tenant, time.time())[0]:
        state = peek(tenant=tenant)
    return state.headers() if state else {}
