"""Real `celery worker` processes: SIGKILL mid-batch, and a Redis outage (our own redis-server
on a free port, so the shared Redis is never touched)."""
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from sending.models import Recipient
from tests.delivery.conftest import make_message, make_signing_domain
from tests.support.processes import delivery_env, free_port, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.faults]

ROOT = Path(__file__).resolve().parents[2]
S = Recipient.Status


def start_worker(tmp_path, *, redis_url, dns_port, smtp_port, beat=False, **extra):
    env = delivery_env(
        redis_url=redis_url, dns_port=dns_port, outbound_port=smtp_port,
        DISPATCH_OUTBOUND_COMMAND_TIMEOUT="5", DISPATCH_OUTBOUND_DATA_END_TIMEOUT="30", DATABASE_CONN_MAX_AGE="0",
        **extra,
    )
    command = [str(ROOT / ".venv/bin/celery"), "-A", "dispatch_site", "worker", "-Q", "delivery,default", "-c", "2",
               "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info", "-n", f"delivery-test-{time.time_ns()}@%h"]
    if beat:
        command += ["-B", "-s", str(tmp_path / "beat-schedule")]
    log = open(tmp_path / f"worker-{time.time_ns()}.log", "wb")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    process.log_path = log.name
    return process


def kill(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def statuses(ids):
    return Counter(Recipient.objects.filter(id__in=ids).values_list("status", flat=True))


@pytest.fixture
def committed_mail(tenant, dns_server, sink):
    make_signing_domain(tenant)
    dns_server.add("dest.test", "MX", "10 mx.dest.test.")
    dns_server.add("mx.dest.test", "A", "127.0.0.1")

    def make(count, prefix="user"):
        return [make_message(tenant, [f"{prefix}{i}@dest.test"])[1][0].id for i in range(count)]

    return make


def test_sigkill_mid_batch_loses_nothing_and_sends_nothing_twice(committed_mail, dns_server, sink, tmp_path):
    from dispatch_site.celery import app

    ids = committed_mail(10)
    sink.hold_data = 4  # the 4th message's DATA reply never comes: the worker is killed waiting for it
    worker = start_worker(tmp_path, redis_url=os.environ["REDIS_URL"], dns_port=dns_server.port, smtp_port=sink.port,
                          DISPATCH_DELIVERY_LEASE="3")
    try:
        app.send_task("sending.delivery.tasks.deliver_recipients", args=[ids], queue="delivery")
        assert sink.held.wait(60), Path(worker.log_path).read_text()[-3000:]
        kill(worker)
        assert statuses(ids) == {S.DELIVERED: 3, S.SENDING: 7}

        # The broker still holds the unacknowledged task (visibility timeout: 1 h); the database
        # lease is what brings the rows back. Move time on past "recently enqueued", restart.
        Recipient.objects.filter(id__in=ids).update(enqueued_at=timezone.now() - timedelta(hours=1))
        time.sleep(3.5)  # the lease expires
        worker = start_worker(tmp_path, redis_url=os.environ["REDIS_URL"], dns_port=dns_server.port, smtp_port=sink.port)
        app.send_task("sending.delivery.tasks.sweep_delivery_queue", queue="default")  # what beat sends every 15 s
        wait_for(lambda: statuses(ids) == {S.DELIVERED: 10}, 60, "every recipient delivered")
        wait_for(lambda: not Recipient.objects.filter(id__in=ids, effects_pending=True).exists(), 30, "effects applied")
    finally:
        kill(worker)
    per_recipient = Counter(rcpt for message in sink.messages for rcpt in message.rcpt_tos)
    assert per_recipient == Counter({f"user{i}@dest.test": 1 for i in range(10)})
    # the outcomes the killed worker had recorded but not yet applied were replayed: one attempt
    # row and one "delivered" event per recipient, none lost, none doubled
    from sending.models import DeliveryAttempt
    from webhooks.models import Event

    assert DeliveryAttempt.objects.filter(recipient_id__in=ids, outcome="delivered").count() == 10
    delivered_events = Counter(e.payload["recipient"] for e in Event.objects.filter(type="delivered"))
    assert delivered_events == Counter({f"user{i}@dest.test": 1 for i in range(10)})


@pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server")
def test_delivery_resumes_by_itself_after_a_redis_outage(committed_mail, dns_server, sink, tmp_path):
    port = free_port()
    redis_command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
    redis_process = subprocess.Popen(redis_command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    redis_url = f"redis://127.0.0.1:{port}/0"
    worker = None
    try:
        time.sleep(0.5)
        worker = start_worker(tmp_path, redis_url=redis_url, dns_port=dns_server.port, smtp_port=sink.port, beat=True,
                              DISPATCH_DELIVERY_REENQUEUE_AFTER="2")
        wait_for(lambda: b"ready." in Path(worker.log_path).read_bytes(), 60, "the worker to start")

        redis_process.terminate()
        redis_process.wait(10)
        # Accepted while the broker is down: committed rows whose task could not be published.
        during = committed_mail(3, prefix="during")
        time.sleep(3)
        assert statuses(during) == {S.QUEUED: 3}

        redis_process = subprocess.Popen(redis_command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        back = time.monotonic()
        wait_for(lambda: statuses(during) == {S.DELIVERED: 3}, 60, "delivery after Redis came back")
        assert time.monotonic() - back < 60
    finally:
        if worker is not None:
            kill(worker)
        redis_process.terminate()
        redis_process.wait(10)
    assert sorted(r for m in sink.messages for r in m.rcpt_tos) == [f"during{i}@dest.test" for i in range(3)]
