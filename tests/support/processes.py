"""Helpers for tests that run real Dispatch processes (workers, gateways, web) as subprocesses."""
import os
import socket
import time

from django.conf import settings


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url():
    """DATABASE_URL of the database this test runs against (pytest-django's test database), for
    subprocesses that must see the same rows."""
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


def delivery_env(*, redis_url, dns_port, outbound_port, **overrides):
    """The environment of a subprocess that delivers for real against the test's own servers: the
    test database, the given Redis, the loopback DNS server, and outbound SMTP to a loopback sink
    (private addresses allowed). `overrides` are added last (timeouts, ports, log level...)."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url(),  # the test database, where the rows are committed
        REDIS_URL=redis_url,
        DISPATCH_DNS_NAMESERVERS=f"127.0.0.1:{dns_port}",
        DISPATCH_OUTBOUND_ALLOW_PRIVATE="true",
        DISPATCH_OUTBOUND_SMTP_PORT=str(outbound_port),
        DISPATCH_DELIVERY_MODE="mx",
    )
    env.update(overrides)
    return env


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
