"""SMTP connections kept open in a worker process, so consecutive batches (tasks) to the same
MX host reuse one connection instead of paying TCP + EHLO + STARTTLS each time.

A pooled connection holds its politeness slot (politeness.acquire_slot) for as long as it is
open. Connections idle longer than DISPATCH_OUTBOUND_IDLE_TIMEOUT, or that carried
DISPATCH_OUTBOUND_MAX_MESSAGES_PER_CONNECTION transactions, are closed.
"""
import threading
import time

from django.conf import settings

from . import politeness
from .smtp_client import SMTPConnection


class NoSlot(Exception):
    """The destination host already has its maximum of concurrent connections."""


class ConnectionPool:
    def __init__(self):
        self._idle = {}  # key -> [SMTPConnection]
        self._lock = threading.Lock()

    @staticmethod
    def _key(target, require_tls):
        return (target.host.lower(), target.address, target.port, require_tls)

    def acquire(self, target, *, require_tls):
        """An open connection to `target` (reused when one is idle). Raises NoSlot, or the
        connection errors of SMTPConnection.connect."""
        self.reap()
        key = self._key(target, require_tls)
        with self._lock:
            idle = self._idle.get(key)
            connection = idle.pop() if idle else None
        if connection is not None:
            connection.reused = True
            connection.slot_refreshed = 0
            self.touch(connection)
            return connection
        token = politeness.acquire_slot(target.host)
        if token is None:
            raise NoSlot(target.host)
        connection = SMTPConnection(address=target.address, port=target.port, server_name=target.host, require_tls=require_tls)
        connection.slot, connection.slot_host, connection.pool_key = token, target.host, key
        connection.reused, connection.slot_refreshed = False, time.monotonic()
        try:
            connection.connect()
        except BaseException:
            politeness.release_slot(target.host, token)
            raise
        return connection

    def touch(self, connection):
        """Keep the connection's slot alive while it is busy (refreshed now and then)."""
        now = time.monotonic()
        if now - connection.slot_refreshed > politeness.SLOT_TTL / 3:
            politeness.refresh_slot(connection.slot_host, connection.slot)
            connection.slot_refreshed = now

    def release(self, connection):
        """Back into the pool when still usable, else closed."""
        usable = (
            connection.connected
            and connection.transactions < settings.DISPATCH_OUTBOUND_MAX_MESSAGES_PER_CONNECTION
            and settings.DISPATCH_OUTBOUND_IDLE_TIMEOUT > 0
        )
        if not usable:
            self.discard(connection)
            return
        connection.idle_since = time.monotonic()
        with self._lock:
            self._idle.setdefault(connection.pool_key, []).append(connection)

    def discard(self, connection):
        connection.quit()
        politeness.release_slot(connection.slot_host, connection.slot)

    def reap(self, *, everything=False):
        deadline = time.monotonic() - settings.DISPATCH_OUTBOUND_IDLE_TIMEOUT
        stale = []
        with self._lock:
            for key, connections in list(self._idle.items()):
                keep = [c for c in connections if not everything and c.idle_since >= deadline]
                stale.extend(c for c in connections if c not in keep)
                if keep:
                    self._idle[key] = keep
                else:
                    del self._idle[key]
        for connection in stale:
            self.discard(connection)

    def close_all(self):
        self.reap(everything=True)


pool = ConnectionPool()
