"""Brute-force limits on API authentication: failed HTTP Basic logins (credentials) and failed
JWT password logins (POST /api/v1/auth/token), counted per source IP and per account.

Password logins (JWT token, portal and admin login forms) go through ThrottledModelBackend, the
one authentication backend; HTTP Basic credentials through `guard` in the API authentication;
the old-password check of the portal's and the admin's password change through
LimitedPasswordChangeForm.

- Per source IP: once DISPATCH_AUTH_FAILURE_LIMIT_PER_IP failures are counted within the window,
  every attempt from that IP is answered 429 RATE_LIMITED with Retry-After.
- Per account (credential user name or email, lower-cased): once the account has
  DISPATCH_AUTH_FAILURE_LIMIT_PER_ACCOUNT failures, attempts for it are refused the same way —
  except from an IP that logged in to that account successfully in the last 30 days (a "known
  source"). Guessing from ever new addresses is limited, while someone failing on a tenant's
  user name elsewhere cannot lock the tenant's own servers out. (The SMTP gateway applies the
  same rule to AUTH: smtp_gateway/authlimit.py.)

Refusals come before any password is checked, so a right guess is not recognisable. Failures
are counted in Redis, shared by every web process: INCR and EXPIRE run in one MULTI/EXEC, so
concurrent failures are all counted and a counter never lives without a TTL; each failure
restarts its window. A successful login resets nothing (a credential's own servers log in on
every request: if that cleared the account's counter, a guesser would get a fresh budget each
time); it marks its IP as a known source of the account. Accounts are hashed: no user names in
Redis.

The check and the count are two steps, so requests that are already being verified when the
limit is reached still finish: the overshoot is bounded by how many requests the web
processes serve at once.

Redis trouble never locks anybody out: the limiter fails open (one warning, then Redis is
left alone for a few seconds, so a dead Redis costs one short timeout, not one per request).
"""
import hashlib
import logging
from contextlib import contextmanager

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import PasswordChangeForm
from django.core.exceptions import PermissionDenied, ValidationError
from rest_framework.exceptions import AuthenticationFailed

from dispatch_site.advisory_redis import AdvisoryRedis
from dispatch_site.errors import RateLimited

log = logging.getLogger(__name__)

KEY_PREFIX = "dispatch:authfail"
REDIS_TIMEOUT = 0.25  # seconds; an auth check must never wait long on Redis
KNOWN_SOURCE_TTL = 30 * 24 * 3600
KNOWN_SOURCE_REFRESH = 24 * 3600  # a known source's mark is renewed at most once a day
REDIS_RETRY_AFTER = 5.0  # seconds Redis is left alone after a failure


_redis = AdvisoryRedis("auth throttling", timeout=REDIS_TIMEOUT, quiet_after_failure=REDIS_RETRY_AFTER)


def client_ip(request):
    # REMOTE_ADDR: behind a reverse proxy, the proxy must set it to the client's address.
    return request.META.get("REMOTE_ADDR") or "unknown"


def _account_digest(account):
    return hashlib.sha256(account.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()[:32]


# KEYS: the IP counter, then optionally the account counter and the known-source mark.
# Returns {ip count, ip TTL[, account count, account TTL, known-source TTL]} (a count is nil when
# absent). One script instead of a MULTI of five commands: the same single round trip, but every
# authenticated request runs it, and one command costs both sides less CPU than seven.
_CHECK = """
local out = {redis.call('GET', KEYS[1]), redis.call('TTL', KEYS[1])}
if KEYS[2] then
  out[3] = redis.call('GET', KEYS[2])
  out[4] = redis.call('TTL', KEYS[2])
  out[5] = redis.call('TTL', KEYS[3])
end
return out
"""
_check_script = None


def _call(operation):
    """`operation(client)`; None when Redis is unavailable (fail open)."""
    client = _redis.client()
    if client is None:
        return None
    from redis.exceptions import RedisError

    try:
        return operation(client)
    except (RedisError, OSError) as exc:
        _redis.failed(exc)
        return None


def _run(build):
    """Run a MULTI/EXEC pipeline built by `build(pipe)`; None when Redis is unavailable."""

    def execute(client):
        with client.pipeline(transaction=True) as pipe:
            build(pipe)
            return pipe.execute()

    return _call(execute)


def _read_counters(keys):
    """The check script's answer for `keys`; None when Redis is unavailable."""

    def execute(client):
        global _check_script
        if _check_script is None:
            _check_script = client.register_script(_CHECK)
        return _check_script(keys=keys, client=client)

    return _call(execute)


class LoginAttempt:
    """One authentication attempt from `request` for `account` (user name or email; may be
    empty). Call `check()` before verifying the secret, then `failed()` or `succeeded()`."""

    def __init__(self, request, account):
        self.ip = client_ip(request)
        self.ip_key = f"{KEY_PREFIX}:ip:{self.ip}"
        digest = _account_digest(account) if isinstance(account, str) and account.strip() else None
        self.account_key = f"{KEY_PREFIX}:account:{digest}" if digest else None
        self.known_key = f"{KEY_PREFIX}:known:{digest}:{self.ip}" if digest else None
        self._known_ttl = -2  # Redis TTL of the known-source mark: -2 = absent

    @property
    def counters(self):
        return [key for key in (self.ip_key, self.account_key) if key]

    def check(self):
        """Raise RateLimited (429, Retry-After) when the IP, or the account from an unknown
        source, is over its limit."""
        keys = [self.ip_key, self.account_key, self.known_key] if self.account_key else [self.ip_key]
        result = _read_counters(keys)
        if result is None:
            return
        blocked = []
        if int(result[0] or 0) >= settings.DISPATCH_AUTH_FAILURE_LIMIT_PER_IP:
            blocked.append(result[1])
        if self.account_key:
            self._known_ttl = result[4]
            known = self._known_ttl != -2
            if int(result[2] or 0) >= settings.DISPATCH_AUTH_FAILURE_LIMIT_PER_ACCOUNT and not known:
                blocked.append(result[3])
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
            for key in self.counters:
                pipe.incr(key)
                pipe.expire(key, window)

        _run(build)

    def succeeded(self):
        """Mark this IP as a known source of the account (renewed at most once a day)."""
        if self.account_key and self._known_ttl != -1 and self._known_ttl < KNOWN_SOURCE_TTL - KNOWN_SOURCE_REFRESH:
            _run(lambda pipe: pipe.set(self.known_key, 1, ex=KNOWN_SOURCE_TTL))


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


class ThrottledModelBackend(ModelBackend):
    """Django's password check under the same limits, for every password login: the JWT token
    endpoint, the portal and the admin. Over a limit the login simply fails (Django's
    authenticate() stops at PermissionDenied); the token endpoint answers 429 before this."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:  # not a login from the network (management commands, tests)
            return super().authenticate(request, username, password, **kwargs)
        attempt = LoginAttempt(request, username if username is not None else kwargs.get(get_user_model().USERNAME_FIELD))
        try:
            attempt.check()
        except RateLimited:
            raise PermissionDenied("too many failed logins") from None
        user = super().authenticate(request, username, password, **kwargs)
        if user is None:
            attempt.failed()
        else:
            attempt.succeeded()
        return user


class LimitedPasswordChangeForm(PasswordChangeForm):
    """The old-password check is a password login like any other (portal and admin):
    a session left open must not be an unlimited oracle for the account's password."""

    def __init__(self, request, *args, **kwargs):
        super().__init__(request.user, *args, **kwargs)
        self.request = request

    def clean_old_password(self):
        attempt = LoginAttempt(self.request, self.user.email)
        try:
            attempt.check()
        except RateLimited as exc:
            raise ValidationError(exc.message) from None
        try:
            old_password = super().clean_old_password()
        except ValidationError:
            attempt.failed()
            raise
        attempt.succeeded()
        return old_password


SIGNUP_KEY_PREFIX = "dispatch:signup"


def count_signup(ip):
    """Count a sign-up attempt (API or portal, accepted or not) from `ip`. Once
    DISPATCH_SIGNUP_LIMIT_PER_IP attempts were made within DISPATCH_SIGNUP_WINDOW_SECONDS (a fixed
    window from the first), raise RateLimited (429, Retry-After): mass account creation and
    probing which addresses have an account are both bounded. Fails open like the login limits."""
    key = f"{SIGNUP_KEY_PREFIX}:ip:{ip}"
    window = settings.DISPATCH_SIGNUP_WINDOW_SECONDS

    def build(pipe):
        pipe.set(key, 0, ex=window, nx=True)  # INCR keeps this expiry: the window is not restarted
        pipe.incr(key)
        pipe.ttl(key)

    result = _run(build)
    if result is None:
        return
    count, ttl = result[1], result[2]
    if count > settings.DISPATCH_SIGNUP_LIMIT_PER_IP:
        retry_after = max(int(ttl), 1)
        raise RateLimited(f"Too many sign-ups from this address; retry in {retry_after} s.",
                          retry_after=retry_after, details={"retry_after": retry_after})


def clear_all():
    """Forget every failure and sign-up counter and the Redis back-off (tests; an operator unblocking)."""
    _redis.reset()
    client = _redis.client()
    if client is None:
        return
    keys = [key for prefix in (KEY_PREFIX, SIGNUP_KEY_PREFIX) for key in client.scan_iter(f"{prefix}:*", count=1000)]
    if keys:
        client.delete(*keys)
