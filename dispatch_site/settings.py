"""Dispatch settings. Everything a deployment changes comes from the environment
(documented in .env.example); development defaults need no external server."""
import base64
import hashlib
from datetime import timedelta
from pathlib import Path

from .env import (
    ImproperlyConfiguredEnv,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_str,
    parse_database_url,
    parse_host_port_list,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("DISPATCH_VAR_DIR", str(BASE_DIR / "var")))

DISPATCH_ENV = env_choice("DISPATCH_ENV", "development", ("development", "test", "production"))
PRODUCTION = DISPATCH_ENV == "production"
DEBUG = env_bool("DEBUG", DISPATCH_ENV == "development")

_DEV_SECRET_KEY = "dev-insecure-dispatch-secret-key-change-me-in-production"
SECRET_KEY = env_str("SECRET_KEY", _DEV_SECRET_KEY)
if PRODUCTION and (SECRET_KEY == _DEV_SECRET_KEY or len(SECRET_KEY) < 32):
    raise ImproperlyConfiguredEnv("SECRET_KEY must be set to a random value of 32+ characters in production")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["*"] if not PRODUCTION else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "tenants",
    "domains",
    "templates_app",
    "sending",
    "webhooks",
    "smtp_gateway",
    "portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "dispatch_site.middleware.NoStoreByDefault",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "portal.middleware.PortalContentSecurityPolicy",
]

ROOT_URLCONF = "dispatch_site.urls"
WSGI_APPLICATION = "dispatch_site.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "dispatch_site" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context.account_nav",
            ],
        },
    },
]

# --- database ---------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'dispatch.sqlite3'}")
_db = parse_database_url(DATABASE_URL)
if _db["ENGINE"].endswith("sqlite3"):
    # Several processes share the development database: wait for locks instead of failing,
    # and take the write lock at BEGIN so two writers never deadlock on upgrade.
    _db["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
else:
    # Django's backend with a health check of reused connections that needs no round trip
    # (dispatch_site/postgresql/base.py).
    _db["ENGINE"] = "dispatch_site.postgresql"
    _db["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
    _db["CONN_HEALTH_CHECKS"] = True
    # Server-side binding: parameters travel separately from the SQL. Prepared statements:
    # psycopg prepares a statement once a connection has run it DATABASE_PREPARE_THRESHOLD
    # times, so PostgreSQL stops parsing and planning the same INSERT/UPDATE for every message
    # (bench/README.md). Django turns psycopg's preparing off unless it is asked for here; 0
    # keeps it off (for a pooler in transaction mode that cannot carry prepared statements).
    _prepare_threshold = env_int("DATABASE_PREPARE_THRESHOLD", 5, minimum=0)
    _db["OPTIONS"] = {"connect_timeout": 5,
                      "server_side_binding": env_bool("DATABASE_SERVER_SIDE_BINDING", True),
                      "prepare_threshold": _prepare_threshold or None}
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- redis / celery --------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

_BROKER_DIR = VAR_DIR / "broker"
if not REDIS_URL:
    for _sub in ("out", "processed"):
        (_BROKER_DIR / _sub).mkdir(parents=True, exist_ok=True)
CELERY_BROKER_URL = REDIS_URL or "filesystem://"
# Publishing while Redis is down must fail fast (the rows are committed; sweepers publish later):
# without max_retries kombu retries the connection for ~6 s inside every send_task.
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {"visibility_timeout": 3600, "socket_connect_timeout": 3, "socket_timeout": 5,
     "max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
    if REDIS_URL
    else {
        "data_folder_in": str(_BROKER_DIR / "out"),
        "data_folder_out": str(_BROKER_DIR / "out"),
        "processed_folder": str(_BROKER_DIR / "processed"),
        "store_processed": False,
    }
)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# Celery's Django fix-up closes every database connection after every task unless this is set;
# reconnecting per task cost delivery more than the task itself. Tasks that care call
# django.db.close_old_connections() first (health check / CONN_MAX_AGE, as a web request does).
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000, minimum=1)

# --- auth ----------------------------------------------------------------------------------
AUTH_USER_MODEL = "tenants.User"
# Django's password check with brute-force limits (JWT, portal and admin logins). ModelBackend
# stays listed because portal signup logs users in naming it (sessions must find their backend).
AUTHENTICATION_BACKENDS = ["dispatch_site.api.throttling.ThrottledModelBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/portal/login"
LOGIN_REDIRECT_URL = "/portal/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "dispatch_site.api.authentication.CredentialBasicAuthentication",
        "dispatch_site.api.authentication.ActiveUserJWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["dispatch_site.api.parsers.StrictJSONParser"],
    "EXCEPTION_HANDLER": "dispatch_site.api.exceptions.envelope_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 15, minimum=1)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 7, minimum=1)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": SECRET_KEY,
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Dispatch API",
    "DESCRIPTION": "Self-hosted transactional email: send by HTTP or SMTP, domains, templates, "
    "suppressions, webhooks, usage.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Served from our own static files: the service must work offline (no CDN).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- i18n / static ---------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Development and tests serve static files straight from the apps (no collectstatic needed).
WHITENOISE_USE_FINDERS = not PRODUCTION
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DISPATCH_MAX_REQUEST_BYTES", 40 * 1024 * 1024, minimum=1024)

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
X_FRAME_OPTIONS = "DENY"

# --- Dispatch ------------------------------------------------------------------------------
DISPATCH_HOSTNAME = env_str("DISPATCH_HOSTNAME", "dispatch.localhost")
DISPATCH_PUBLIC_URL = env_str("DISPATCH_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")


def _encryption_keys():
    """Key ring: the first key encrypts, every key decrypts (so keys can rotate)."""
    raw = env_list("DISPATCH_ENCRYPTION_KEYS")
    if not raw:
        if PRODUCTION:
            raise ImproperlyConfiguredEnv("DISPATCH_ENCRYPTION_KEYS must be set in production")
        # Development: a key derived from SECRET_KEY so restarts can still read old rows.
        return [hashlib.sha256(("dispatch-dev-encryption:" + SECRET_KEY).encode()).digest()]
    keys = []
    for item in raw:
        try:
            key = base64.urlsafe_b64decode(item + "=" * (-len(item) % 4))
        except ValueError:
            raise ImproperlyConfiguredEnv("DISPATCH_ENCRYPTION_KEYS: a key is not base64") from None
        if len(key) != 32:
            raise ImproperlyConfiguredEnv("DISPATCH_ENCRYPTION_KEYS: each key must be 32 bytes (base64)")
        keys.append(key)
    return keys


DISPATCH_ENCRYPTION_KEYS = _encryption_keys()

DISPATCH_SMTP_BIND = env_str("DISPATCH_SMTP_BIND", "127.0.0.1")
DISPATCH_SMTP_STARTTLS_PORTS = [int(p) for p in env_list("DISPATCH_SMTP_STARTTLS_PORTS", ["2525"])]
DISPATCH_SMTP_TLS_PORTS = [int(p) for p in env_list("DISPATCH_SMTP_TLS_PORTS", [])]
DISPATCH_SMTP_INBOUND_PORT = env_int("DISPATCH_SMTP_INBOUND_PORT", 0, minimum=0, maximum=65535)
DISPATCH_SMTP_TLS_CERT = env_str("DISPATCH_SMTP_TLS_CERT", str(VAR_DIR / "tls" / "dev-cert.pem"))
DISPATCH_SMTP_TLS_KEY = env_str("DISPATCH_SMTP_TLS_KEY", str(VAR_DIR / "tls" / "dev-key.pem"))
DISPATCH_SMTP_AUTH_FAILURE_LIMIT = env_int("DISPATCH_SMTP_AUTH_FAILURE_LIMIT", 10, minimum=1)
DISPATCH_SMTP_AUTH_FAILURE_DELAY = env_float("DISPATCH_SMTP_AUTH_FAILURE_DELAY", 1.0, minimum=0)
DISPATCH_SMTP_IDLE_TIMEOUT = env_int("DISPATCH_SMTP_IDLE_TIMEOUT", 300, minimum=1)
DISPATCH_SMTP_AUTH_FAILURE_WINDOW = env_int("DISPATCH_SMTP_AUTH_FAILURE_WINDOW", 900, minimum=1)
DISPATCH_SMTP_MAX_SESSIONS = env_int("DISPATCH_SMTP_MAX_SESSIONS", 1000, minimum=1)

# Brute-force limits on API logins (Basic credentials, JWT token logins): failed attempts per
# client IP and per account within the window; over the limit -> 429 (dispatch_site/api/throttling.py).
# The account limit spares sources that logged in to the account in the last 30 days.
DISPATCH_AUTH_FAILURE_LIMIT_PER_IP = env_int("DISPATCH_AUTH_FAILURE_LIMIT_PER_IP", 30, minimum=1)
DISPATCH_AUTH_FAILURE_LIMIT_PER_ACCOUNT = env_int("DISPATCH_AUTH_FAILURE_LIMIT_PER_ACCOUNT", 20, minimum=1)
DISPATCH_AUTH_FAILURE_WINDOW_SECONDS = env_int("DISPATCH_AUTH_FAILURE_WINDOW_SECONDS", 900, minimum=1)
# Sign-ups (API register and portal) per client IP within a fixed window; over it -> 429.
DISPATCH_SIGNUP_LIMIT_PER_IP = env_int("DISPATCH_SIGNUP_LIMIT_PER_IP", 10, minimum=1)
DISPATCH_SIGNUP_WINDOW_SECONDS = env_int("DISPATCH_SIGNUP_WINDOW_SECONDS", 3600, minimum=1)

DISPATCH_DNS_NAMESERVERS = parse_host_port_list("DISPATCH_DNS_NAMESERVERS")
DISPATCH_DNS_TIMEOUT = env_float("DISPATCH_DNS_TIMEOUT", 5.0, minimum=0.1)

DISPATCH_DELIVERY_MODE = env_choice("DISPATCH_DELIVERY_MODE", "capture" if DISPATCH_ENV == "development" else "mx", ("mx", "capture"))
DISPATCH_OUTBOUND_SMTP_PORT = env_int("DISPATCH_OUTBOUND_SMTP_PORT", 25, minimum=1, maximum=65535)
DISPATCH_OUTBOUND_ALLOW_PRIVATE = env_bool("DISPATCH_OUTBOUND_ALLOW_PRIVATE", False)
DISPATCH_SMARTHOST = env_str("DISPATCH_SMARTHOST", "")
DISPATCH_MAX_QUEUE_LIFETIME = env_int("DISPATCH_MAX_QUEUE_LIFETIME", 5 * 24 * 3600, minimum=60)
DISPATCH_MAX_MESSAGE_BYTES = env_int("DISPATCH_MAX_MESSAGE_BYTES", 25 * 1024 * 1024, minimum=1024)
DISPATCH_MAX_RECIPIENTS = env_int("DISPATCH_MAX_RECIPIENTS", 50, minimum=1)

# Outbound delivery engine (sending/delivery/, docs/delivery.md).
DISPATCH_TLS_REQUIRED_DOMAINS = [d.lower() for d in env_list("DISPATCH_TLS_REQUIRED_DOMAINS", [])]
DISPATCH_OUTBOUND_CONNECT_TIMEOUT = env_float("DISPATCH_OUTBOUND_CONNECT_TIMEOUT", 30.0, minimum=0.1)
# RFC 5321 §4.5.3.2 minimums: greeting 5 min, MAIL/RCPT 5 min, DATA 2 min, block 3 min, "." 10 min.
DISPATCH_OUTBOUND_GREETING_TIMEOUT = env_float("DISPATCH_OUTBOUND_GREETING_TIMEOUT", 300.0, minimum=0.1)
DISPATCH_OUTBOUND_COMMAND_TIMEOUT = env_float("DISPATCH_OUTBOUND_COMMAND_TIMEOUT", 300.0, minimum=0.1)
DISPATCH_OUTBOUND_DATA_INIT_TIMEOUT = env_float("DISPATCH_OUTBOUND_DATA_INIT_TIMEOUT", 120.0, minimum=0.1)
DISPATCH_OUTBOUND_DATA_BLOCK_TIMEOUT = env_float("DISPATCH_OUTBOUND_DATA_BLOCK_TIMEOUT", 180.0, minimum=0.1)
DISPATCH_OUTBOUND_DATA_END_TIMEOUT = env_float("DISPATCH_OUTBOUND_DATA_END_TIMEOUT", 600.0, minimum=0.1)
DISPATCH_OUTBOUND_MAX_CONNECTIONS_PER_HOST = env_int("DISPATCH_OUTBOUND_MAX_CONNECTIONS_PER_HOST", 10, minimum=1)
DISPATCH_OUTBOUND_MAX_MESSAGES_PER_CONNECTION = env_int("DISPATCH_OUTBOUND_MAX_MESSAGES_PER_CONNECTION", 100, minimum=1)
DISPATCH_OUTBOUND_IDLE_TIMEOUT = env_float("DISPATCH_OUTBOUND_IDLE_TIMEOUT", 5.0, minimum=0)
DISPATCH_OUTBOUND_HOST_BACKOFF = env_int("DISPATCH_OUTBOUND_HOST_BACKOFF", 120, minimum=1)
DISPATCH_RETRY_BASE_DELAY = env_int("DISPATCH_RETRY_BASE_DELAY", 60, minimum=1)
DISPATCH_RETRY_MAX_DELAY = env_int("DISPATCH_RETRY_MAX_DELAY", 3600, minimum=1)
DISPATCH_DELIVERY_LEASE = env_int("DISPATCH_DELIVERY_LEASE", 900, minimum=2)
DISPATCH_DELIVERY_BATCH_SIZE = env_int("DISPATCH_DELIVERY_BATCH_SIZE", 100, minimum=1)
DISPATCH_DELIVERY_REENQUEUE_AFTER = env_int("DISPATCH_DELIVERY_REENQUEUE_AFTER", 60, minimum=1)
# Coalesced delivery kicks (sending/delivery/services.py): at most one delivery task published per
# interval while one is outstanding; a task drains the due queue for at most DRAIN_SECONDS.
DISPATCH_DELIVERY_KICK_INTERVAL_MS = env_int("DISPATCH_DELIVERY_KICK_INTERVAL_MS", 250, minimum=1)
DISPATCH_DELIVERY_DRAIN_SECONDS = env_int("DISPATCH_DELIVERY_DRAIN_SECONDS", 10, minimum=0)
DISPATCH_DELIVERY_DRAIN_PAUSE_MS = env_int("DISPATCH_DELIVERY_DRAIN_PAUSE_MS", 100, minimum=0)

DISPATCH_WEBHOOK_ALLOW_PRIVATE = env_bool("DISPATCH_WEBHOOK_ALLOW_PRIVATE", False)
DISPATCH_WEBHOOK_CONNECT_TIMEOUT = env_float("DISPATCH_WEBHOOK_CONNECT_TIMEOUT", 5.0, minimum=0.1)
DISPATCH_WEBHOOK_TIMEOUT = env_float("DISPATCH_WEBHOOK_TIMEOUT", 15.0, minimum=0.1)
DISPATCH_WEBHOOK_DISABLE_AFTER_HOURS = env_int("DISPATCH_WEBHOOK_DISABLE_AFTER_HOURS", 72, minimum=1)
DISPATCH_WEBHOOK_EVENT_RETENTION_DAYS = env_int("DISPATCH_WEBHOOK_EVENT_RETENTION_DAYS", 30, minimum=4)

# Usage, quotas and limits (tenants/limits.py, tenants/ratelimit.py, tenants/compliance.py, docs/usage.md).
# Seconds the per-minute rate limiter waits for Redis before failing open.
DISPATCH_RATE_LIMIT_REDIS_TIMEOUT = env_float("DISPATCH_RATE_LIMIT_REDIS_TIMEOUT", 0.25, minimum=0.01)
# Compliance guard: rates in percent of the month's accepted recipients, checked once a tenant
# has sent DISPATCH_COMPLIANCE_MIN_VOLUME this month. *_WARN flags, *_SUSPEND suspends.
DISPATCH_COMPLIANCE_MIN_VOLUME = env_int("DISPATCH_COMPLIANCE_MIN_VOLUME", 200, minimum=1)
DISPATCH_COMPLIANCE_BOUNCE_WARN = env_float("DISPATCH_COMPLIANCE_BOUNCE_WARN", 5.0, minimum=0)
DISPATCH_COMPLIANCE_COMPLAINT_WARN = env_float("DISPATCH_COMPLIANCE_COMPLAINT_WARN", 0.1, minimum=0)
DISPATCH_COMPLIANCE_BOUNCE_SUSPEND = env_float("DISPATCH_COMPLIANCE_BOUNCE_SUSPEND", 10.0, minimum=0)
DISPATCH_COMPLIANCE_COMPLAINT_SUSPEND = env_float("DISPATCH_COMPLIANCE_COMPLAINT_SUSPEND", 0.5, minimum=0)
# Log retention: expired messages are deleted this many per transaction.
DISPATCH_RETENTION_BATCH_SIZE = env_int("DISPATCH_RETENTION_BATCH_SIZE", 1000, minimum=1)

DISPATCH_VERIFY_RECORD_PREFIX = env_str("DISPATCH_VERIFY_RECORD_PREFIX", "_dispatch")
DISPATCH_VERIFY_TOKEN_PREFIX = env_str("DISPATCH_VERIFY_TOKEN_PREFIX", "dispatch-verify=")
DISPATCH_DKIM_SELECTOR = env_str("DISPATCH_DKIM_SELECTOR", "dispatch")
DISPATCH_RETURN_PATH_SUBDOMAIN = env_str("DISPATCH_RETURN_PATH_SUBDOMAIN", "bounces")
# Bounce processing (docs/bounce-processing.md): suppress an address after this many soft
# bounces within the window (0 = never; hard bounces and complaints always suppress).
DISPATCH_SOFT_BOUNCE_SUPPRESS_AFTER = env_int("DISPATCH_SOFT_BOUNCE_SUPPRESS_AFTER", 0, minimum=0)
DISPATCH_SOFT_BOUNCE_WINDOW_DAYS = env_int("DISPATCH_SOFT_BOUNCE_WINDOW_DAYS", 7, minimum=1)
# Days inbound reports (DSN / ARF as received, encrypted) are kept after processing.
DISPATCH_INBOUND_REPORT_RETENTION_DAYS = env_int("DISPATCH_INBOUND_REPORT_RETENTION_DAYS", 30, minimum=1)
# Sending domains: verified domains are re-checked this often; a domain whose ownership record
# disappeared stays usable (status "warning") for the grace period, then fails.
DISPATCH_DOMAIN_RECHECK_MINUTES = env_int("DISPATCH_DOMAIN_RECHECK_MINUTES", 60, minimum=1)
DISPATCH_DOMAIN_GRACE_HOURS = env_int("DISPATCH_DOMAIN_GRACE_HOURS", 72, minimum=0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
