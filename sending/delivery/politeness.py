"""Per-destination politeness shared by every worker, kept in Redis:

- a cap on concurrent connections per MX host (a semaphore: a sorted set of tokens scored by
  their expiry, so a worker that dies without releasing frees its slot after SLOT_TTL), and
- a back-off flag for a host that answered 421 or 4.7.x (leave it alone for a while).

Redis trouble never stops delivery: every function fails open (no cap, no back-off).
"""
import time
import uuid

from django.conf import settings

from dispatch_site.advisory_redis import AdvisoryRedis

SLOT_TTL = 120  # seconds; refreshed on every transaction while a connection is in use
_PREFIX = "dispatch:delivery"

_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  return 1
end
return 0
"""

# Delivering without per-host limits beats not delivering: every caller fails open.
_redis = AdvisoryRedis("delivery politeness (per-host connection cap and back-off)", timeout=0.5)


def _slot_key(host):
    return f"{_PREFIX}:slots:{host.lower()}"


def _backoff_key(host):
    return f"{_PREFIX}:backoff:{host.lower()}"


def acquire_slot(host):
    """A token for one connection to `host`, or None when the cap is reached.
    Fails open: with Redis unreachable every connection gets a (dummy) token."""
    token = uuid.uuid4().hex
    client = _redis.client()
    if client is None:
        return token
    now = time.time()
    try:
        granted = client.eval(
            _ACQUIRE, 1, _slot_key(host), now, now + SLOT_TTL, settings.DISPATCH_OUTBOUND_MAX_CONNECTIONS_PER_HOST, token, SLOT_TTL * 2
        )
    except Exception as exc:  # noqa: BLE001 - any Redis failure: fail open
        _redis.failed(exc)
        return token
    return token if granted else None


def refresh_slot(host, token):
    client = _redis.client()
    if client is None:
        return
    try:
        client.zadd(_slot_key(host), {token: time.time() + SLOT_TTL}, xx=True)
    except Exception as exc:  # noqa: BLE001
        _redis.failed(exc)


def release_slot(host, token):
    client = _redis.client()
    if client is None:
        return
    try:
        client.zrem(_slot_key(host), token)
    except Exception as exc:  # noqa: BLE001
        _redis.failed(exc)


def back_off(host, seconds=None):
    client = _redis.client()
    if client is None:
        return
    try:
        client.set(_backoff_key(host), "1", ex=int(seconds or settings.DISPATCH_OUTBOUND_HOST_BACKOFF))
    except Exception as exc:  # noqa: BLE001
        _redis.failed(exc)


def backing_off(host):
    """Seconds left in `host`'s back-off (0 when it may be contacted)."""
    client = _redis.client()
    if client is None:
        return 0
    try:
        remaining = client.ttl(_backoff_key(host))
    except Exception as exc:  # noqa: BLE001
        _redis.failed(exc)
        return 0
    return max(0, remaining or 0)
