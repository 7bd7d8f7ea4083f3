"""A real SMTP server on loopback (aiosmtpd) playing the recipients' MX in delivery tests.

Behaviour is chosen by the recipient's local part, so one batch can mix outcomes:
  defer*  -> 451 4.2.1 at RCPT          reject* -> 550 5.1.1 at RCPT
  spam*   -> 554 5.7.1 after DATA       slow*   -> 451 4.7.1 at RCPT (asks us to slow down)
  drop*   -> connection closed at RCPT  stall*  -> no answer to RCPT for `stall_seconds`
anything else is accepted. `greeting` replaces the 220 banner (e.g. "421 4.3.2 busy").
Counts connections and keeps every accepted message (envelope + bytes + TLS flag).
"""
import asyncio
import socket
import threading
from dataclasses import dataclass

from aiosmtpd.smtp import SMTP


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list
    data: bytes
    tls: bool
    connection: int


class _Handler:
    def __init__(self, sink):
        self.sink = sink

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.sink.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0].lower()
        if local.startswith("defer"):
            return "451 4.2.1 mailbox busy, try later"
        if local.startswith("reject"):
            return "550 5.1.1 no such user here"
        if local.startswith("slow"):
            return "451 4.7.1 too many messages, slow down"
        if local.startswith("drop"):
            server.transport.abort()
            return "421 4.4.2 gone"
        if local.startswith("stall"):
            await asyncio.sleep(self.sink.stall_seconds)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if any(r.split("@")[0].lower().startswith("spam") for r in envelope.rcpt_tos):
            return "554 5.7.1 message content rejected as spam"
        if self.sink.hold_data is not None:
            # Hold the reply; the message counts as received only once the 250 goes out.
            await self.sink._hold(server)
            if server.transport is None or server.transport.is_closing():
                return "451 4.3.0 gone"
        with self.sink.lock:
            self.sink.messages.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or envelope.content,
                         session.ssl is not None, getattr(server, "connection_number", 0))
            )
        return "250 2.0.0 queued as sink"


class _SinkSMTP(SMTP):
    def __init__(self, sink, **kwargs):
        super().__init__(_Handler(sink), hostname="sink.test", **kwargs)
        self.sink = sink

    def connection_made(self, transport):
        with self.sink.lock:
            self.sink.connections += 1
            self.connection_number = self.sink.connections
        super().connection_made(transport)

    async def _handle_client(self):
        if self.sink.greeting:
            await self.push(self.sink.greeting)
            self.transport.close()
            return
        await super()._handle_client()


class SMTPSink:
    def __init__(self, *, tls_context=None, pipelining=True):
        self.tls_context = tls_context
        self.pipelining = pipelining
        self.greeting = None
        self.stall_seconds = 5.0
        self.hold_data = None  # set to an int N: hold the reply to the N-th DATA (1-based) forever
        self.messages = []
        self.connections = 0
        self.lock = threading.Lock()
        self.held = threading.Event()
        self._data_count = 0
        self.port = None

    async def _hold(self, server):
        with self.lock:
            self._data_count += 1
            count = self._data_count
        if count == self.hold_data:
            self.held.set()
            while server.transport is not None and not server.transport.is_closing():
                await asyncio.sleep(0.05)

    def start(self):
        ready = threading.Event()
        self.loop = asyncio.new_event_loop()

        def run():
            asyncio.set_event_loop(self.loop)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
            kwargs = {"tls_context": self.tls_context} if self.tls_context else {}
            self.server = self.loop.run_until_complete(
                self.loop.create_server(lambda: _SinkSMTP(self, data_size_limit=10_000_000, **kwargs), sock=sock)
            )
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(5)
        return self

    def stop(self):
        def shutdown():
            self.server.close()
            self.loop.stop()

        self.loop.call_soon_threadsafe(shutdown)
        self.thread.join(5)

    def received_for(self, address):
        return [m for m in self.messages if address in m.rcpt_tos]
