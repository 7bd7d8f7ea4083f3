"""The gateway runs in-process on a background event loop, bound to free loopback ports.

In ordinary (`django_db`) tests the gateway's database work runs in one thread that shares the
test's connection, so it sees the test's uncommitted fixtures and everything is rolled back
afterwards. Tests marked `django_db(transaction=True)` run the real thread pool with its own
connections (commit visibility, concurrency, a separate process)."""
import asyncio
import base64
import functools
import os
import smtplib
import socket
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from django.db import connections

from smtp_gateway.authlimit import KEY_PREFIX
from smtp_gateway.server import Gateway, GatewayConfig, Listener


class SharedConnectionExecutor:
    """Runs the gateway's ORM calls in one thread on the test's own (transactional) connection."""

    def __init__(self):
        self.connection = connections["default"]
        self.connection.inc_thread_sharing()
        self._pool = ThreadPoolExecutor(1, initializer=functools.partial(connections.__setitem__, "default", self.connection))

    async def run(self, fn, /, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def close_all(self, timeout=10.0):
        self._pool.shutdown(wait=True)
        self.connection.dec_thread_sharing()


class GatewayThread:
    def __init__(self, config, *, share_test_connection):
        self.gateway = Gateway(config)
        if share_test_connection:
            self.gateway.db = SharedConnectionExecutor()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="smtp-gateway-test")

    def start(self):
        self.thread.start()
        self.call(self.gateway.start())
        return self

    def call(self, coroutine, timeout=30):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self, grace=5):
        if not self.thread.is_alive():
            return
        self.call(self.gateway.shutdown(grace), timeout=grace + 30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    @property
    def starttls_port(self):
        return self.gateway.port("submission", implicit_tls=False)

    @property
    def tls_port(self):
        return self.gateway.port("submission", implicit_tls=True)

    @property
    def sessions(self):
        return len(self.gateway.sessions)


@pytest.fixture
def start_gateway(settings, request):
    counters = redis.Redis.from_url(os.environ["REDIS_URL"])
    stale = counters.keys(KEY_PREFIX + "*")
    if stale:
        counters.delete(*stale)
    running = []

    def start(**overrides):
        overrides.setdefault("listeners", (Listener("submission", 0), Listener("submission", 0, implicit_tls=True)))
        overrides.setdefault("bind", "127.0.0.1")
        overrides.setdefault("db_threads", 4)
        marker = request.node.get_closest_marker("django_db")
        transactional = bool(marker and marker.kwargs.get("transaction"))
        config = GatewayConfig.from_settings(**overrides)
        runner = GatewayThread(config, share_test_connection=not transactional).start()
        running.append(runner)
        return runner

    start.running = running
    yield start
    for runner in running:
        runner.stop()


@pytest.fixture
def gateway(start_gateway):
    return start_gateway()


def current_gateway(start_gateway):
    """The gateway a test started last, or a default one."""
    return start_gateway.running[-1] if start_gateway.running else start_gateway()


@pytest.fixture
def client_tls(settings):
    """Client TLS context that trusts the gateway's (development) certificate."""
    return ssl.create_default_context(cafile=settings.DISPATCH_SMTP_TLS_CERT)


@pytest.fixture
def smtp_starttls(start_gateway, client_tls):
    """Connect with smtplib over STARTTLS: `smtp_starttls(login=credential)`."""
    opened = []

    def connect(login=None, source="127.0.0.1", port=None):
        client = smtplib.SMTP("127.0.0.1", port or current_gateway(start_gateway).starttls_port, timeout=10,
                              source_address=(source, 0))
        opened.append(client)
        client.ehlo("client.test")
        client.starttls(context=client_tls)
        client.ehlo("client.test")
        if login is not None:
            client.login(login.username, login.password)
        return client

    yield connect
    for client in opened:
        try:
            client.close()
        except Exception:
            pass


@pytest.fixture
def verified_domain(settings):
    """A verified sending domain for a tenant, made through the domains service."""
    from domains.services import domain_mark_verified_for_development

    def make(tenant, name="example.com"):
        settings.DISPATCH_ENV = "development"
        try:
            return domain_mark_verified_for_development(tenant=tenant, name=name)
        finally:
            settings.DISPATCH_ENV = "test"

    return make


class RawSession:
    """A bare socket session for what smtplib will not send (malformed input, exact bytes)."""

    def __init__(self, port, *, implicit_tls=False, context=None, source="127.0.0.1", timeout=10):
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
        if implicit_tls:
            sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
        self.sock = sock
        self.buffer = b""
        self.greeting = self.reply()

    def send(self, data):
        self.sock.sendall(data)

    def command(self, line):
        self.send(line.encode() + b"\r\n" if isinstance(line, str) else line + b"\r\n")
        return self.reply()

    def reply(self):
        """One whole (possibly multi-line) reply as text; '' when the server closed."""
        lines = []
        while True:
            while b"\r\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return "\r\n".join(lines)
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            lines.append(line.decode("utf-8", "replace"))
            if len(line) < 4 or line[3:4] != b"-":
                return "\r\n".join(lines)

    def closed(self):
        """True once the server has closed the connection (EOF or reset)."""
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, ssl.SSLError):
            return True

    def starttls(self, context):
        assert self.command("STARTTLS").startswith("220")
        self.sock = context.wrap_socket(self.sock, server_hostname="127.0.0.1")

    def login(self, credential):
        token = base64.b64encode(f"\0{credential.username}\0{credential.password}".encode()).decode()
        return self.command(f"AUTH PLAIN {token}")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


@pytest.fixture
def raw_session(start_gateway, client_tls):
    """`raw_session(tls=True, login=credential)`: an implicit-TLS raw session after EHLO
    (and AUTH); `tls=False` gives a plaintext session on the STARTTLS port before EHLO."""
    opened = []

    def connect(tls=True, login=None, source="127.0.0.1"):
        gateway = current_gateway(start_gateway)
        if tls:
            session = RawSession(gateway.tls_port, implicit_tls=True, context=client_tls, source=source)
            assert session.command("EHLO client.test").startswith("250")
        else:
            session = RawSession(gateway.starttls_port, source=source)
        opened.append(session)
        if login is not None:
            assert session.login(login).startswith("235"), "login failed"
        return session

    yield connect
    for session in opened:
        session.close()


@pytest.fixture
def sender(tenant, credential, verified_domain):
    """A credential of `tenant`, whose example.com is a verified sending domain."""
    verified_domain(tenant, "example.com")
    return credential
