"""The real processes for the fault tests — web (gunicorn), SMTP gateway, Celery worker with
beat — each a subprocess on free loopback ports, pointed at the pytest test database, our own
redis-server, the loopback DNS server and a sink MX; plus the clients that load them over HTTP
and SMTP and remember exactly what was accepted."""
import itertools
import os
import signal
import smtplib
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import requests
from django.conf import settings as django_settings
from tests.support.processes import delivery_env, free_port, wait_for  # noqa: F401 (wait_for is re-exported to test_faults)

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


class RedisServer:
    """A private redis-server: the shared one on 6379 is never stopped."""

    def __init__(self, directory):
        self.port = free_port()
        self.directory = directory
        self.process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: port_open(self.port), 10, "redis-server")
        return self

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@dataclass
class Service:
    """One process type; restartable on the same ports."""

    name: str
    command: list
    env: dict
    log_dir: Path
    ports: tuple = ()
    ready_text: bytes = b""
    process: subprocess.Popen = None
    starts: int = 0
    kills: int = 0

    def start(self):
        self.starts += 1
        self.log_path = self.log_dir / f"{self.name}-{self.starts}.log"
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        for port in self.ports:
            wait_for(lambda: port_open(port) or self.process.poll() is not None, 60, f"{self.name} on port {port}")
            assert self.process.poll() is None, self.log_tail()
        if self.ready_text:
            wait_for(lambda: self.ready_text in self.log_path.read_bytes(), 60, f"{self.name} ready")
        return self

    def kill(self):
        """SIGKILL the whole process group (gunicorn's and celery's children too)."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
            self.kills += 1

    def log_tail(self, size=3000):
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""


class Stack:
    def __init__(self, tmp_path, *, redis_url, dns_port, sink_port):
        self.web_port, self.smtp_port = free_port(), free_port()
        env = delivery_env(
            redis_url=redis_url, dns_port=dns_port, outbound_port=sink_port,
            DATABASE_CONN_MAX_AGE="60",
            DISPATCH_DELIVERY_LEASE="5",
            DISPATCH_DELIVERY_REENQUEUE_AFTER="3",
            DISPATCH_OUTBOUND_COMMAND_TIMEOUT="10",
            DISPATCH_OUTBOUND_DATA_END_TIMEOUT="20",
            DISPATCH_SMTP_BIND="127.0.0.1",
            DISPATCH_SMTP_STARTTLS_PORTS=str(self.smtp_port),
            DISPATCH_SMTP_TLS_PORTS="",
            DISPATCH_SMTP_AUTH_FAILURE_DELAY="0.05",
            LOG_LEVEL="WARNING",
        )
        self.env = env
        self.web = Service("web", [str(VENV_BIN / "gunicorn"), "dispatch_site.wsgi", "-b", f"127.0.0.1:{self.web_port}",
                                   "-w", "2", "--threads", "4", "--graceful-timeout", "2", "--timeout", "60"],
                           env, tmp_path, ports=(self.web_port,))
        self.gateway = Service("smtp", [str(VENV_BIN / "python"), "manage.py", "smtp_gateway"], env, tmp_path,
                               ports=(self.smtp_port,))
        worker_env = dict(env, LOG_LEVEL="INFO")
        self.worker = Service("worker", [str(VENV_BIN / "celery"), "-A", "dispatch_site", "worker", "-B",
                                         "-s", str(tmp_path / "beat-schedule"), "-Q", "delivery,events,default",
                                         "-c", "2", "--without-gossip", "--without-mingle", "--without-heartbeat",
                                         "-l", "info", "-n", f"faults-{time.time_ns()}@%h"],
                              worker_env, tmp_path, ready_text=b"ready.")

    @property
    def services(self):
        return (self.web, self.gateway, self.worker)

    def start(self):
        for service in self.services:
            service.start()
        return self

    def stop(self):
        for service in self.services:
            service.kill()

    def logs(self):
        return "\n".join(f"--- {s.name}\n{s.log_tail()}" for s in self.services)


@dataclass
class Ledger:
    """What the clients were told. accepted: recipient -> Message-ID it was accepted under;
    in_doubt: recipients of requests that ended without an answer (may or may not be stored)."""

    accepted: dict = field(default_factory=dict)
    in_doubt: set = field(default_factory=set)
    refused: int = 0  # clean 4xx/5xx answers
    timeline: list = field(default_factory=list)  # (monotonic time, channel, outcome)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, channel, outcome, recipients, message_id=None):
        with self.lock:
            self.timeline.append((time.monotonic(), channel, outcome))
            if outcome == "accepted":
                for recipient in recipients:
                    self.accepted[recipient] = message_id
            elif outcome == "in_doubt":
                self.in_doubt.update(recipients)
            else:
                self.refused += 1

    def outcomes(self, since=0.0, until=float("inf")):
        with self.lock:
            return [(channel, outcome) for at, channel, outcome in self.timeline if since <= at < until]


class Load:
    """Steady traffic: `http_threads` clients on /send and `smtp_threads` clients submitting over
    STARTTLS + AUTH, each message to its own recipients on dest.test, paced at `interval`."""

    def __init__(self, stack, *, tenant_id, credential, ledger, sender, http_threads=2, smtp_threads=2, interval=0.05):
        self.stack, self.tenant_id, self.credential, self.ledger, self.sender = stack, tenant_id, credential, ledger, sender
        self.http_threads, self.smtp_threads, self.interval = http_threads, smtp_threads, interval
        self.counter = itertools.count()
        self.stopping = threading.Event()
        self.threads = []
        self.tls = ssl.create_default_context(cafile=django_settings.DISPATCH_SMTP_TLS_CERT)

    def start(self):
        for number in range(self.http_threads):
            self.threads.append(threading.Thread(target=self._http, args=(number,), daemon=True))
        for number in range(self.smtp_threads):
            self.threads.append(threading.Thread(target=self._smtp, args=(number,), daemon=True))
        for thread in self.threads:
            thread.start()
        return self

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join(60)

    def _recipients(self, channel):
        n = next(self.counter)
        return n, [f"{channel}{n}a@dest.test", f"{channel}{n}b@dest.test"]

    def _http(self, number):
        session = requests.Session()
        session.auth = (self.credential.username, self.credential.password)
        url = f"http://127.0.0.1:{self.stack.web_port}/api/v1/dispatch/tenants/{self.tenant_id}/send"
        while not self.stopping.is_set():
            n, recipients = self._recipients("h")
            body = {"from": self.sender, "to": recipients[:1], "cc": recipients[1:], "subject": f"http {n}",
                    "text_body": f"message {n}"}
            try:
                response = session.post(url, json=body, timeout=15)
            except requests.RequestException:
                self.ledger.record("http", "in_doubt", recipients)
                session = requests.Session()
                session.auth = (self.credential.username, self.credential.password)
                time.sleep(0.2)
                continue
            if response.status_code == 200:
                self.ledger.record("http", "accepted", recipients, response.json()["data"]["message_id"])
            else:
                assert "error" in response.json(), response.text
                self.ledger.record("http", f"refused {response.status_code}", recipients)
            time.sleep(self.interval)

    def _smtp(self, number):
        client = None
        while not self.stopping.is_set():
            n, recipients = self._recipients("s")
            message_id = f"faults-{n}@client.test"
            message = EmailMessage()
            message["From"], message["To"], message["Cc"] = self.sender, recipients[0], recipients[1]
            message["Subject"], message["Message-ID"] = f"smtp {n}", f"<{message_id}>"
            message.set_content(f"message {n}\n")
            try:
                if client is None:
                    client = smtplib.SMTP("127.0.0.1", self.stack.smtp_port, timeout=15)
                    client.starttls(context=self.tls)
                    client.login(self.credential.username, self.credential.password)
                refused = client.send_message(message)  # recipients refused one by one (e.g. 451 at RCPT)
                self.ledger.record("smtp", "accepted", [r for r in recipients if r not in refused], message_id)
                if refused:
                    self.ledger.record("smtp", f"refused {sorted(refused.values())[0][0]}", list(refused))
            except smtplib.SMTPResponseException as exc:  # a clean refusal (451 while the database is away...)
                self.ledger.record("smtp", f"refused {exc.smtp_code}", recipients)
                client = _close(client)
                time.sleep(0.2)
            except (smtplib.SMTPException, OSError):
                self.ledger.record("smtp", "in_doubt", recipients)
                client = _close(client)
                time.sleep(0.2)
            time.sleep(self.interval)
        _close(client)


def _close(client):
    if client is not None:
        try:
            client.close()
        except Exception:
            pass
    return None


class TimedMessages(list):
    """The sink's list of received messages, stamping each with the time it arrived (before the
    sink answers 250, so before the worker can have recorded the delivery)."""

    def append(self, received):
        import email.parser

        received.received_at = time.time()
        headers = email.parser.BytesHeaderParser().parsebytes(received.data)
        received.message_id = (headers.get("Message-ID") or "").strip().strip("<>")
        super().append(received)


def timed_sink(sink):
    sink.messages = TimedMessages()
    return sink


def delivered_per_recipient(sink):
    """recipient -> [(Message-ID, arrival time) of each copy the sink received]."""
    copies = {}
    with sink.lock:
        messages = list(sink.messages)
    for received in messages:
        for recipient in received.rcpt_tos:
            copies.setdefault(recipient.lower(), []).append((received.message_id, received.received_at))
    return copies
