"""`manage.py smtp_gateway` as a real process: SIGTERM stops accepting, lets DATA in flight
finish, and exits 0; --processes N serves from N workers sharing the ports."""
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sending.models import Message

from .conftest import RawSession
from .test_submission import simple_message
from tests.support.processes import database_url, free_port

pytestmark = pytest.mark.django_db(transaction=True)

BASE_DIR = Path(__file__).resolve().parents[2]


def wait_for_port(port, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("gateway did not start listening")


@pytest.fixture
def run_gateway():
    procs = []

    def start(*args):
        starttls, implicit = free_port(), free_port()
        env = dict(
            os.environ, DATABASE_URL=database_url(), DISPATCH_SMTP_BIND="127.0.0.1",
            DISPATCH_SMTP_STARTTLS_PORTS=str(starttls), DISPATCH_SMTP_TLS_PORTS=str(implicit),
        )
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "smtp_gateway", *args], cwd=BASE_DIR, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        procs.append(proc)
        wait_for_port(starttls, proc)
        wait_for_port(implicit, proc)
        return proc, starttls, implicit

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigterm_finishes_data_in_flight_refuses_new_sessions_and_exits(run_gateway, client_tls, sender):
    proc, starttls, implicit = run_gateway("--grace", "20")
    busy = RawSession(implicit, implicit_tls=True, context=client_tls)
    busy.command("EHLO client.test")
    assert busy.login(sender).startswith("235")
    assert busy.command("MAIL FROM:<alice@example.com>").startswith("250")
    assert busy.command("RCPT TO:<bob@example.net>").startswith("250")
    assert busy.command("DATA").startswith("354")
    busy.send(b"From: alice@example.com\r\nTo: bob@example.net\r\nSubject: in flight\r\n\r\nfirst half\r\n")
    idle = RawSession(starttls)

    proc.send_signal(signal.SIGTERM)
    assert idle.reply().startswith("421 4.3.2")  # idle sessions are told and closed
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the listeners close
        try:
            socket.create_connection(("127.0.0.1", starttls), timeout=1).close()
            time.sleep(0.05)
        except ConnectionRefusedError:
            break
    else:
        raise AssertionError("still accepting connections after SIGTERM")

    busy.send(b"second half\r\n.\r\n")
    assert busy.reply().startswith("250 2.0.0")
    assert busy.reply().startswith("421 4.3.2")
    assert proc.wait(20) == 0, proc.stdout.read()
    assert Message.objects.get().subject == "in flight"


def test_several_processes_serve_and_stop_together(run_gateway, client_tls, sender):
    proc, starttls, implicit = run_gateway("--processes", "2", "--grace", "5")
    for number in range(4):
        with smtplib.SMTP("127.0.0.1", starttls, timeout=10) as client:
            client.starttls(context=client_tls)
            client.login(sender.username, sender.password)
            client.sendmail("alice@example.com", ["bob@example.net"], simple_message(subject=f"p{number}"))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert Message.objects.count() == 4
