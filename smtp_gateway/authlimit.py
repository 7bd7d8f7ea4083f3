"""Failed-AUTH limits, shared by every gateway process through Redis.

- Per client IP: after `ip_limit` failures in the window the IP is refused (421 4.7.0).
- Per account (the user name, lower-cased, with or without @DISPATCH_HOSTNAME): after
  `account_limit` failures in the window, attempts for that account are refused before the
  password is checked — except from an IP that has logged in to that account successfully in
  the last 30 days ("known device"). Guessing from ever new addresses is limited, and someone
  failing on a tenant's user name elsewhere cannot lock the tenant's own servers out.

INCR and EXPIRE run in one MULTI/EXEC, so concurrent failures are all counted and a key never
lives without a TTL; each failure restarts its window. Accounts are hashed (no user names in
Redis). If Redis is unreachable the per-IP count falls back to this process's memory (a weaker
limit rather than none), the per-account limit fails open, and Redis is left alone for a few
seconds so a dead Redis does not slow every AUTH down."""
import hashlib
import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

KEY_PREFIX = "dispatch:smtp:auth:"
KNOWN_SOURCE_TTL = 30 * 24 * 3600
REDIS_RETRY_AFTER = 5.0


class AuthFailureLimiter:
    def __init__(self, *, ip_limit, account_limit, window, redis_url, hostname):
        self.limit = ip_limit
        self.account_limit = account_limit
        self.window = window
        self._suffix = "@" + hostname.lower()
        self._redis_url = redis_url
        self._redis = None
        self._redis_down_until = 0.0
        self._local = {}  # ip -> (count, expires_at monotonic)

    # --- keys --------------------------------------------------------------------------------

    def account_digest(self, username):
        account = (username or "").strip().lower().removesuffix(self._suffix)
        return hashlib.sha256(account.encode("utf-8", "surrogatepass")).hexdigest()[:32]

    def _ip_key(self, ip):
        return f"{KEY_PREFIX}fail:ip:{ip}"

    def _account_key(self, username):
        return f"{KEY_PREFIX}fail:account:{self.account_digest(username)}"

    def _known_key(self, username, ip):
        return f"{KEY_PREFIX}known:{self.account_digest(username)}:{ip}"

    # --- checks ------------------------------------------------------------------------------

    async def ip_blocked(self, ip):
        count = self._local_count(ip)
        client = self._client()
        if client is not None:
            try:
                count = max(int(await client.get(self._ip_key(ip)) or 0), count)
            except (RedisError, OSError) as exc:
                self._redis_failed(exc)
        return count >= self.limit

    async def account_blocked(self, username, ip):
        client = self._client()
        if client is None:
            return False
        try:
            async with client.pipeline(transaction=False) as pipe:
                pipe.get(self._account_key(username))
                pipe.exists(self._known_key(username, ip))
                failures, known = await pipe.execute()
        except (RedisError, OSError) as exc:
            self._redis_failed(exc)
            return False
        return int(failures or 0) >= self.account_limit and not known

    # --- outcomes ----------------------------------------------------------------------------

    async def record_failure(self, ip, username):
        """Count one failure for the IP and the account; returns the IP's failures in the window."""
        local = self._local_increment(ip)
        client = self._client()
        if client is None:
            return local
        try:
            async with client.pipeline(transaction=True) as pipe:
                for key in (self._ip_key(ip), self._account_key(username)):
                    pipe.incr(key)
                    pipe.expire(key, self.window)
                ip_count, *_ = await pipe.execute()
            return max(int(ip_count), local)
        except (RedisError, OSError) as exc:
            self._redis_failed(exc)
            return local

    async def record_success(self, username, ip):
        client = self._client()
        if client is None:
            return
        try:
            await client.set(self._known_key(username, ip), 1, ex=KNOWN_SOURCE_TTL)
        except (RedisError, OSError) as exc:
            self._redis_failed(exc)

    # --- Redis and the in-process fallback ------------------------------------------------------

    def _client(self):
        if not self._redis_url or time.monotonic() < self._redis_down_until:
            return None
        if self._redis is None:
            self._redis = aioredis.Redis.from_url(
                self._redis_url, socket_connect_timeout=0.5, socket_timeout=0.5
            )
        return self._redis

    def _redis_failed(self, exc):
        log.warning("SMTP auth limits: Redis unavailable (%s); per-IP counts in process memory", exc)
        self._redis_down_until = time.monotonic() + REDIS_RETRY_AFTER

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
