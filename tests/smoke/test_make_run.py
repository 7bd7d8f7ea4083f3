"""`make run` end to end, as a new user runs it: the real Makefile target with the development
defaults (SQLite, file-system broker, capture mode), then the printed curl's request, until the
message shows as delivered in the log."""
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def wait_for_port(port, process, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise AssertionError("make run exited early")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"nothing answered on port {port}")


def test_make_run_starts_everything_and_delivers_the_printed_first_email(tmp_path):
    web_port, smtp_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DISPATCH_ENV",
                                                             "DISPATCH_HOSTNAME", "DISPATCH_DELIVERY_MODE")}
    env.update(DISPATCH_VAR_DIR=str(tmp_path / "var"), DISPATCH_WEB_PORT=str(web_port),
               DISPATCH_PUBLIC_URL=f"http://127.0.0.1:{web_port}", DISPATCH_SMTP_STARTTLS_PORTS=str(smtp_port))
    log = open(tmp_path / "make-run.log", "w+")
    process = subprocess.Popen(["make", "run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        wait_for_port(web_port, process)
        wait_for_port(smtp_port, process)
        output = (tmp_path / "make-run.log").read_text()
        assert "demo@dispatch.localhost" in output and f"http://127.0.0.1:{web_port}/portal/" in output
        username = re.search(r"username: (\S+)", output).group(1)
        password = re.search(r"password: (dp_sk_\S+)", output).group(1)
        curl = re.search(r"curl -u '[^']+' \\\n\s+(\S+) \\\n\s+-H 'Content-Type: application/json' \\\n\s+-d '([^']+)'", output)
        url, body = curl.group(1), curl.group(2)

        sent = requests.post(url, data=body, auth=(username, password),
                             headers={"Content-Type": "application/json"}, timeout=30)
        assert sent.status_code in (200, 201, 202), sent.text
        email_id = sent.json()["data"]["id"]

        deadline, status = time.time() + 90, None
        while time.time() < deadline:
            detail = requests.get(url.replace("/send", f"/emails/{email_id}"), auth=(username, password), timeout=30)
            status = detail.json()["data"]["status"]
            if status == "delivered":
                break
            time.sleep(1)
        assert status == "delivered", (tmp_path / "make-run.log").read_text()[-3000:]
        portal = requests.get(f"http://127.0.0.1:{web_port}/portal/login", timeout=30)
        assert portal.status_code == 200
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
