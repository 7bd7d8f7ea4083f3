"""Loaded by pytest before Django (pytest.ini: -p tests.testenv): the test environment.

Tests run against real PostgreSQL and Redis (scripts/ensure-services.sh starts them);
override with DATABASE_URL / REDIS_URL."""
import os

os.environ.setdefault("DISPATCH_ENV", "test")
os.environ.setdefault("DATABASE_URL", "postgres://postgres:postgres@127.0.0.1:5432/dispatch")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("DISPATCH_HOSTNAME", "mail.dispatch.test")
os.environ.setdefault("DISPATCH_PUBLIC_URL", "http://testserver")
os.environ.setdefault("DISPATCH_DELIVERY_MODE", "mx")
os.environ.setdefault("DISPATCH_VAR_DIR", "/tmp/dispatch-test-var")
os.environ.setdefault("DISPATCH_SMTP_AUTH_FAILURE_DELAY", "0.05")
