"""A real HTTP receiver on loopback, scripted per test, recording what it was sent."""
import http.server
import queue
import ssl
import threading
import time
from dataclasses import dataclass, field

import pytest


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict = field(default_factory=dict)
    delay: float = 0.0  # seconds before the status line
    drip: float = 0.0  # seconds between header lines (a receiver that never finishes its answer)


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes


class Receiver:
    def __init__(self, tls_context=None):
        self.requests = []
        self.replies = queue.SimpleQueue()
        self.default = Reply()
        self.server_names = []  # SNI seen by the TLS server
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
                try:
                    reply = receiver.replies.get_nowait()
                except queue.Empty:
                    reply = receiver.default
                time.sleep(reply.delay)
                try:
                    if reply.drip:
                        self.wfile.write(f"HTTP/1.1 {reply.status} OK\r\n".encode())
                        for number in range(100):  # one header line at a time, never finishing soon
                            self.wfile.write(f"X-Pad-{number}: x\r\n".encode())
                            self.wfile.flush()
                            time.sleep(reply.drip)
                        return
                    self.send_response(reply.status)
                    headers = {"Content-Length": str(len(reply.body)), "Connection": "close", **reply.headers}
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    pass  # the client gave up (timeout tests)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls_context is not None:
            tls_context.sni_callback = lambda sock, name, ctx: self.server_names.append(name)
            self.server.socket = tls_context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path="/hook", host="127.0.0.1", scheme="http"):
        return f"{scheme}://{host}:{self.port}{path}"

    def reply(self, *replies):
        for item in replies:
            self.replies.put(item if isinstance(item, Reply) else Reply(status=item))

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def _broker_not_marked_down():
    from webhooks import services

    services._broker["down_until"] = 0
    yield
    services._broker["down_until"] = 0


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def allow_private(settings):
    """Loopback receivers are private addresses: let deliveries reach them."""
    settings.DISPATCH_WEBHOOK_ALLOW_PRIVATE = True


@pytest.fixture
def tls_material(tmp_path):
    """A self-signed certificate for hook.test: (server context, client context trusting it)."""
    from smtp_gateway.tls import ensure_certificate

    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_certificate(cert_path, key_path, hostname="hook.test")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_path, key_path)
    return server_context, ssl.create_default_context(cafile=str(cert_path))


@pytest.fixture
def tls_receiver(tls_material):
    server = Receiver(tls_context=tls_material[0])
    yield server
    server.stop()
