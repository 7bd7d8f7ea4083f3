"""A Redis client for advisory work — rate limits, login-failure counters — that must never
stop the service: short socket timeouts, and after an error Redis is left alone for a few
seconds, so a dead Redis costs one short timeout per few seconds, not one per request.
Callers treat `client() is None` as "fail open"."""
import logging
import time

from django.conf import settings

log = logging.getLogger(__name__)


class AdvisoryRedis:
    def __init__(self, purpose, *, timeout=0.25, quiet_after_failure=5.0):
        self.purpose = purpose
        self.timeout = timeout
        self.quiet_after_failure = quiet_after_failure
        self._clients = {}
        self._down_until = 0.0

    def client(self):
        """The client for settings.REDIS_URL (one per URL per process), or None while Redis is
        not configured or is being left alone after a failure."""
        url = settings.REDIS_URL
        if not url or time.monotonic() < self._down_until:
            return None
        if url not in self._clients:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            timeout = self.timeout() if callable(self.timeout) else self.timeout
            # One quick try per call: the work is advisory and must never stall a request.
            self._clients[url] = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                                      retry=Retry(NoBackoff(), 0))
        return self._clients[url]

    def failed(self, exc):
        if time.monotonic() >= self._down_until:
            log.warning("%s: Redis unavailable (%s); failing open for %.0f s", self.purpose, exc, self.quiet_after_failure)
        self._down_until = time.monotonic() + self.quiet_after_failure

    def reset(self):
        """Forget clients and the back-off (tests, and after a settings change)."""
        self._clients.clear()
        self._down_until = 0.0
