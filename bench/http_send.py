"""Benchmark of the HTTP submission path: /send and /send-bulk behind gunicorn, real
PostgreSQL and Redis, load from `wrk` (C, so the load generator costs little CPU).

    DATABASE_URL=... REDIS_URL=... .venv/bin/python bench/http_send.py [--duration 20] [--connections 32]

It migrates the database, creates a bench tenant (overage on, so quota never interferes),
a credential and a verified domain, starts gunicorn on a free port, runs wrk against /send
and /send-bulk (100 messages per request), and prints accepted messages per second and
latency percentiles. Delivery is not running: accepted messages stay queued (the broker is
Redis; published tasks are left in the queue and deleted at the end).
"""
import argparse
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dispatch_site.settings")
os.environ.setdefault("DISPATCH_ENV", "production")
os.environ.setdefault("SECRET_KEY", "bench-secret-key-" + "x" * 40)
os.environ.setdefault("DISPATCH_ENCRYPTION_KEYS", base64.urlsafe_b64encode(b"b" * 32).decode())
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost")
os.environ.setdefault("LOG_LEVEL", "WARNING")

WRK_SCRIPT = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "%(auth)s"
wrk.body = [==[%(body)s]==]
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%%d errors_status=%%d errors_other=%%d duration_us=%%d p50=%%d p90=%%d p99=%%d max=%%d\n",
    summary.requests, summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def setup_fixtures():
    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    from domains.models import Domain
    from domains.services import domain_create
    from tenants.models import Tenant, User
    from tenants.services import credential_create, credential_username, plans_seed, tenant_create

    plans_seed()
    user = User.objects.filter(email="bench@bench.localhost").first() or User.objects.create_user(
        email="bench@bench.localhost", password=None
    )
    tenant = Tenant.objects.filter(owner=user).first() or tenant_create(owner=user, name="Bench", plan="pro")
    tenant.overage_enabled = True
    tenant.save()
    domain = Domain.objects.for_tenant(tenant).filter(name="bench.example").first() or domain_create(
        tenant=tenant, name="bench.example"
    )
    Domain.objects.filter(pk=domain.pk).update(status=Domain.Status.VERIFIED, verified_at=timezone.now())
    credential, password = credential_create(tenant=tenant, label="bench")
    auth = "Basic " + base64.b64encode(f"{credential_username(credential)}:{password}".encode()).decode()
    return tenant, auth


def message(index):
    return {
        "from": "Bench <news@bench.example>",
        "to": [f"user{index}@example.org"],
        "subject": f"Your receipt #{index}",
        "html_body": "<h1>Thanks!</h1><p>" + "Lorem ipsum dolor sit amet. " * 20 + "</p>",
        "text_body": "Thanks! " + "Lorem ipsum dolor sit amet. " * 20,
        "tags": ["receipt"],
        "metadata": {"order": index},
    }


def run_wrk(url, auth, body, *, duration, connections, threads):
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % {"auth": auth, "body": json.dumps(body)})
    try:
        out = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", script.name, url],
            capture_output=True, text=True, check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    fields = dict(re.findall(r"(\w+)=(\d+)", out.split("RESULT", 1)[1]))
    result = {k: int(v) for k, v in fields.items()}
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def _drop_published_tasks():
    from django.conf import settings

    if settings.REDIS_URL:
        import redis

        redis.Redis.from_url(settings.REDIS_URL).delete("delivery")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--bulk-connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "4")))
    parser.add_argument("--gunicorn-threads", type=int, default=1)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk)")

    tenant, auth = setup_fixtures()
    port = free_port()
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "dispatch_site.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(args.workers),
         "--threads", str(args.gunicorn_threads), "--log-level", "warning", "--keep-alive", "75", "--backlog", "2048"],
        cwd=ROOT, env=os.environ.copy(), start_new_session=True,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        base = f"http://127.0.0.1:{port}/api/v1/dispatch/tenants/{tenant.id}"
        run_wrk(f"{base}/send", auth, message(0), duration=3, connections=8, threads=2)  # warm-up
        send = run_wrk(f"{base}/send", auth, message(1), duration=args.duration, connections=args.connections, threads=2)
        bulk = run_wrk(f"{base}/send-bulk", auth, {"messages": [message(i) for i in range(100)]},
                       duration=args.duration, connections=args.bulk_connections, threads=2)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
        _drop_published_tasks()

    print(f"/send      {args.connections} connections: {send['rps']:.0f} req/s (= messages/s), "
          f"p50 {send['p50'] / 1000:.1f} ms, p90 {send['p90'] / 1000:.1f} ms, p99 {send['p99'] / 1000:.1f} ms, "
          f"non-2xx {send['errors_status']}, socket errors {send['errors_other']}")
    print(f"/send-bulk {args.bulk_connections} connections: {bulk['rps']:.1f} req/s = {bulk['rps'] * 100:.0f} messages/s, "
          f"p50 {bulk['p50'] / 1000:.1f} ms, p99 {bulk['p99'] / 1000:.1f} ms, non-2xx {bulk['errors_status']}")


if __name__ == "__main__":
    main()
