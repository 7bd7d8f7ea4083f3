"""Brute-force limits on API authentication: failed HTTP Basic logins (credentials) and failed
JWT password logins (POST /api/v1/auth/token), counted per source IP and per account.

Failures are counted in Redis, shared by every web process: INCR and EXPIRE run in one
MULTI/EXEC, so concurrent failures are all counted and a counter never lives without a TTL.
Each failure restarts the counter's window. Once a counter has reached its limit, every
attempt from that IP, or for that account, is answered 429 RATE_LIMITED with Retry-After
before any password is checked, so an attacker learns nothing more, not even from a right
guess. A successful login clears the account's counter (only someone who knows the password
can do that); the IP's counter is left to expire, or an attacker holding one valid credential
could reset it between guesses.

The check and the count are two steps, so requests that are already being verified when the
limit is reached still finish: the overshoot is bounded by how many requests the web
processes serve at once.

Redis trouble never locks anybody out: the limiter fails open (one warning, then Redis is
left alone for a few seconds, so a dead Redis costs one short timeout, not one per request).
"""
import hashlib
import logging
import time
from contextlib import contextmanager

from django.conf import settings

from rest_framework.exceptions import AuthenticationFailed

from dispatch_site.errors import RateLimited

log = logging.getLogger(__name__)

KEY_PREFIX = "dispatch:authfail"
REDIS_TIMEOUT = 0.25  # seconds; an auth check must never wait long on Redis
REDIS_RETRY_AFTER = 5.0  # seconds Redis is left alone after a failure


class _Redis:
    def __init__(self):
        self._clients = {}
        self._down_until = 0.0

    def client(self):
        url = settings.REDIS_URL
        if not url or time.monotonic() < self._down_until:
            return None
        if url not in self._clients:
            import redis

            self._clients[url] = redis.Redis.from_url(
                url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
            )
        return self._clients[url]

    def failed(self, exc):
        if time.monotonic() >= self._down_until:
            log.warning("auth throttling: Redis unavailable (%s); not limiting for %.0f s", exc, REDIS_RETRY_AFTER)
        self._down_until = time.monotonic() + REDIS_RETRY_AFTER

    def reset(self):
        """Forget clients and back-off (tests)."""
        self._clients.clear()
        self._down_until = 0.0


_redis = _Redis()


def client_ip(request):
    # REMOTE_ADDR: behind a reverse proxy, the proxy must set it to the client's address.
    return request.META.get("REMOTE_ADDR") or "unknown"


def _keys(ip, account):
    """(key, limit) pairs. Accounts are hashed: no user names or emails in Redis."""
    keys = [(f"{KEY_PREFIX}:ip:{ip}", settings.DISPATCH_AUTH_FAILURE_LIMIT_PER_IP)]
    if account:
        digest = hashlib.sha256(account.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()[:32]
        keys.append((f"{KEY_PREFIX}:account:{digest}", settings.DISPATCH_AUTH_FAILURE_LIMIT_PER_ACCOUNT))
    return keys


def _run(build):
    """Run a pipeline built by `build(pipe)`; None when Redis is unavailable (fail open)."""
    client = _redis.client()
    if client is None:
        return None
    from redis.exceptions import RedisError

    try:
        with client.pipeline(transaction=True) as pipe:
            build(pipe)
            return pipe.execute()
    except (RedisError, OSError) as exc:
        _redis.failed(exc)
        return None


class LoginAttempt:
    """One authentication attempt from `request` for `account` (user name or email; may be
    empty). Call `check()` before verifying the secret, then `failed()` or `succeeded()`."""

    def __init__(self, request, account):
        self.ip = client_ip(request)
        self.account = account if isinstance(account, str) else ""
        self.keys = _keys(self.ip, self.account)
        self._account_failures = 0

    def check(self):
        """Raise RateLimited (429, Retry-After) when the IP or the account is over its limit."""
        names = [key for key, _ in self.keys]

        def build(pipe):
            pipe.mget(names)
            for name in names:
                pipe.ttl(name)

        result = _run(build)
        if result is None:
            return
        counts, ttls = [int(c or 0) for c in result[0]], result[1:]
        if len(counts) > 1:
            self._account_failures = counts[1]
        blocked = [ttl for (_, limit), count, ttl in zip(self.keys, counts, ttls) if count >= limit]
        if blocked:
            retry_after = max(max(blocked), 1)
            raise RateLimited(
                f"Too many failed authentication attempts; retry in {retry_after} s.",
                retry_after=retry_after,
                details={"retry_after": retry_after},
            )

    def failed(self):
        window = settings.DISPATCH_AUTH_FAILURE_WINDOW_SECONDS

        def build(pipe):
            for name, _ in self.keys:
                pipe.incr(name)
                pipe.expire(name, window)

        _run(build)

    def succeeded(self):
        if self._account_failures:
            _run(lambda pipe: pipe.delete(self.keys[1][0]))


@contextmanager
def guard(request, account):
    """Wrap the verification of a secret: refused up front when over the limit, an
    AuthenticationFailed raised inside counts as a failure, a normal exit as a success."""
    attempt = LoginAttempt(request, account)
    attempt.check()
    try:
        yield attempt
    except AuthenticationFailed:
        attempt.failed()
        raise
    attempt.succeeded()


def clear_all():
    """Forget every failure counter and the Redis back-off (tests; an operator unblocking)."""
    _redis.reset()
    client = _redis.client()
    if client is None:
        return
    keys = list(client.scan_iter(f"{KEY_PREFIX}:*", count=1000))
    if keys:
        client.delete(*keys)
