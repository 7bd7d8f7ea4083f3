"""The gateway process: listeners per role, session bookkeeping, graceful shutdown, and the
optional pre-fork supervisor (N processes sharing the ports through SO_REUSEPORT)."""
import asyncio
import logging
import os
import signal
import time
from dataclasses import dataclass, field, replace

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from .authlimit import AuthFailureLimiter
from .db import DatabaseExecutor
from .handlers import SubmissionHandler, SubmissionSMTP
from .inbound import InboundHandler, InboundSMTP
from .tls import ensure_certificate, server_context

log = logging.getLogger(__name__)

# role -> (protocol class, handler class). "inbound" is the MX for bounce / complaint reports
# (smtp_gateway/inbound.py), opened on DISPATCH_SMTP_INBOUND_PORT when it is > 0.
ROLES = {"submission": (SubmissionSMTP, SubmissionHandler), "inbound": (InboundSMTP, InboundHandler)}


@dataclass(frozen=True)
class Listener:
    role: str
    port: int
    implicit_tls: bool = False


@dataclass(frozen=True)
class GatewayConfig:
    hostname: str
    bind: str
    listeners: tuple
    tls_cert: str
    tls_key: str
    max_message_bytes: int
    max_recipients: int
    idle_timeout: float
    auth_failure_limit: int
    auth_failure_limit_per_account: int
    auth_failure_delay: float
    auth_failure_window: int
    max_sessions: int
    redis_url: str
    db_threads: int = 8
    reuse_port: bool = False
    generate_dev_certificate: bool = True
    data_buffer_limit: int = 1 << 30  # message bytes held in memory by all DATA transfers of a process

    @classmethod
    def from_settings(cls, **overrides):
        listeners = [Listener("submission", port) for port in settings.DISPATCH_SMTP_STARTTLS_PORTS]
        listeners += [Listener("submission", port, implicit_tls=True) for port in settings.DISPATCH_SMTP_TLS_PORTS]
        if settings.DISPATCH_SMTP_INBOUND_PORT:
            listeners.append(Listener("inbound", settings.DISPATCH_SMTP_INBOUND_PORT))
        config = cls(
            hostname=settings.DISPATCH_HOSTNAME,
            bind=settings.DISPATCH_SMTP_BIND,
            listeners=tuple(listeners),
            tls_cert=settings.DISPATCH_SMTP_TLS_CERT,
            tls_key=settings.DISPATCH_SMTP_TLS_KEY,
            max_message_bytes=settings.DISPATCH_MAX_MESSAGE_BYTES,
            max_recipients=settings.DISPATCH_MAX_RECIPIENTS,
            idle_timeout=settings.DISPATCH_SMTP_IDLE_TIMEOUT,
            auth_failure_limit=settings.DISPATCH_SMTP_AUTH_FAILURE_LIMIT,
            auth_failure_limit_per_account=settings.DISPATCH_AUTH_FAILURE_LIMIT_PER_ACCOUNT,
            auth_failure_delay=settings.DISPATCH_SMTP_AUTH_FAILURE_DELAY,
            auth_failure_window=settings.DISPATCH_SMTP_AUTH_FAILURE_WINDOW,
            max_sessions=settings.DISPATCH_SMTP_MAX_SESSIONS,
            redis_url=settings.REDIS_URL,
            generate_dev_certificate=not settings.PRODUCTION,
        )
        return replace(config, **overrides)


@dataclass
class BoundListener:
    listener: Listener
    port: int
    server: asyncio.AbstractServer = field(repr=False)


class Gateway:
    def __init__(self, config):
        self.config = config
        self.sessions = set()
        self.buffered_bytes = 0
        self.draining = False
        self.bound = []
        self.auth_limiter = AuthFailureLimiter(
            ip_limit=config.auth_failure_limit, account_limit=config.auth_failure_limit_per_account,
            window=config.auth_failure_window, redis_url=config.redis_url, hostname=config.hostname,
        )
        self.db = DatabaseExecutor(config.db_threads)

    def port(self, role="submission", implicit_tls=False):
        """The bound port of the first listener of that kind (tests bind port 0)."""
        for bound in self.bound:
            if bound.listener.role == role and bound.listener.implicit_tls == implicit_tls:
                return bound.port
        raise LookupError(f"no {role} listener (implicit_tls={implicit_tls})")

    async def start(self):
        loop = asyncio.get_running_loop()
        tls = tls_context_for(self.config)
        handlers = {}
        for listener in self.config.listeners:
            if listener.role not in ROLES:
                log.warning("SMTP %s role is not available; port %s not opened", listener.role, listener.port)
                continue
            protocol_class, handler_class = ROLES[listener.role]
            handler = handlers.setdefault(listener.role, handler_class(db=self.db))

            def factory(protocol_class=protocol_class, handler=handler, implicit=listener.implicit_tls):
                return protocol_class(handler, gateway=self, tls_context=tls, implicit_tls=implicit)

            server = await loop.create_server(
                factory,
                host=self.config.bind,
                port=listener.port,
                ssl=tls if listener.implicit_tls else None,
                ssl_handshake_timeout=min(self.config.idle_timeout, 30) if listener.implicit_tls else None,
                reuse_port=self.config.reuse_port or None,
                backlog=1024,
            )
            port = server.sockets[0].getsockname()[1]
            self.bound.append(BoundListener(listener, port, server))
            log.info(
                "SMTP %s listening on %s:%s (%s)", listener.role, self.config.bind, port,
                "implicit TLS" if listener.implicit_tls else "STARTTLS",
            )

    # --- sessions -------------------------------------------------------------------------------

    def session_opened(self, protocol):
        self.sessions.add(protocol)

    def session_closed(self, protocol):
        self.sessions.discard(protocol)

    def refusal_for_new_session(self):
        if self.draining:
            return "421 4.3.2 Service shutting down, try again later"
        if len(self.sessions) > self.config.max_sessions:
            return "421 4.7.0 Too many connections, try again later"
        return None

    # --- shutdown ---------------------------------------------------------------------------------

    async def shutdown(self, grace=30.0):
        """Stop accepting, let every DATA in flight finish (up to `grace` seconds), close the rest."""
        self.draining = True
        for bound in self.bound:
            bound.server.close()
        for protocol in list(self.sessions):
            protocol.close_for_shutdown()
        deadline = time.monotonic() + grace
        while any(p.in_data for p in self.sessions) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        # Closed sessions may still be waiting for the client's TLS close_notify: allow a moment
        # for the last replies to leave, then cut what is left.
        linger = time.monotonic() + 1.0
        while self.sessions and time.monotonic() < linger:
            await asyncio.sleep(0.05)
        for protocol in list(self.sessions):
            if protocol.in_data:
                log.warning("SMTP shutdown: aborting a DATA transfer still running after %.0fs", grace)
            if protocol.transport is not None:
                protocol.transport.abort()
        await asyncio.sleep(0)  # let connection_lost callbacks run
        await self.auth_limiter.close()
        await asyncio.to_thread(self.db.close_all)

    async def serve_until_signalled(self, grace=30.0):
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await self.start()
        await stop.wait()
        log.info("SMTP gateway: shutting down (%d sessions open)", len(self.sessions))
        await self.shutdown(grace)


def tls_context_for(config):
    """The server TLS context; a development certificate is made when none exists (never in
    production, where a missing certificate is a configuration error)."""
    if config.generate_dev_certificate:
        ensure_certificate(config.tls_cert, config.tls_key, hostname=config.hostname)
    missing = [path for path in (config.tls_cert, config.tls_key) if not os.path.exists(path)]
    if missing:
        raise ImproperlyConfigured(f"DISPATCH_SMTP_TLS_CERT / DISPATCH_SMTP_TLS_KEY: not found: {', '.join(missing)}")
    return server_context(config.tls_cert, config.tls_key)


def run_process(config, grace):
    asyncio.run(Gateway(config).serve_until_signalled(grace))


def run_supervisor(config, *, processes, grace):
    """Fork `processes` workers that share the listening ports; forward SIGTERM/SIGINT to them
    and restart a worker that dies on its own."""
    tls_context_for(config)  # generated (or found missing) once here, not raced by the workers
    config = replace(config, reuse_port=True)
    connections.close_all()  # never share a database socket across fork
    children = {}
    stopping = False

    def spawn():
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                run_process(config, grace)
            except BaseException:
                log.exception("SMTP gateway worker crashed")
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        children[pid] = time.monotonic()

    def forward(signum, _frame):
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for _ in range(processes):
        spawn()
    exit_code = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        started = children.pop(pid, None)
        if started is None:
            continue
        if os.waitstatus_to_exitcode(status) != 0:
            exit_code = 1
        if not stopping:
            log.error("SMTP gateway worker %s exited (status %s); restarting", pid, status)
            if time.monotonic() - started < 1:
                time.sleep(1)  # crash loop: do not spin
            spawn()
    return exit_code
