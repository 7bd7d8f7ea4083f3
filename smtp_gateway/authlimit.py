"""Failed-AUTH counting per client IP, shared by every gateway process through Redis.

INCR and EXPIRE run in one MULTI/EXEC, so concurrent failures are all counted and a key never
lives without a TTL. If Redis is unreachable the count falls back to this process's memory
(fail open to a weaker limit rather than refusing every login), and Redis is not retried
for a few seconds so a dead Redis does not slow every AUTH down."""
import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

KEY_PREFIX = "dispatch:smtp:authfail:"
REDIS_RETRY_AFTER = 5.0


class AuthFailureLimiter:
    def __init__(self, *, limit, window, redis_url):
        self.limit = limit
        self.window = window
        self._redis_url = redis_url
        self._redis = None
        self._redis_down_until = 0.0
        self._local = {}  # ip -> (count, expires_at monotonic)

    def _client(self):
        if not self._redis_url or time.monotonic() < self._redis_down_until:
            return None
        if self._redis is None:
            self._redis = aioredis.Redis.from_url(
                self._redis_url, socket_connect_timeout=0.5, socket_timeout=0.5
            )
        return self._redis

    def _redis_failed(self, exc):
        log.warning("auth failure counter: Redis unavailable (%s); counting in process memory", exc)
        self._redis_down_until = time.monotonic() + REDIS_RETRY_AFTER

    async def blocked(self, ip):
        return await self.failures(ip) >= self.limit

    async def failures(self, ip):
        client = self._client()
        if client is not None:
            try:
                value = await client.get(KEY_PREFIX + ip)
                return max(int(value or 0), self._local_count(ip))
            except (RedisError, OSError) as exc:
                self._redis_failed(exc)
        return self._local_count(ip)

    async def record_failure(self, ip):
        """Count one failure; returns the failures inside the window, this one included."""
        local = self._local_increment(ip)
        client = self._client()
        if client is not None:
            try:
                async with client.pipeline(transaction=True) as pipe:
                    pipe.incr(KEY_PREFIX + ip)
                    pipe.expire(KEY_PREFIX + ip, self.window)
                    count, _ = await pipe.execute()
                return max(int(count), local)
            except (RedisError, OSError) as exc:
                self._redis_failed(exc)
        return local

    def _local_count(self, ip):
        count, expires_at = self._local.get(ip, (0, 0.0))
        if expires_at <= time.monotonic():
            self._local.pop(ip, None)
            return 0
        return count

    def _local_increment(self, ip):
        if len(self._local) > 10_000:  # bound memory under a distributed attack
            now = time.monotonic()
            self._local = {k: v for k, v in self._local.items() if v[1] > now}
        count = self._local_count(ip) + 1
        self._local[ip] = (count, time.monotonic() + self.window)
        return count

    async def close(self):
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
