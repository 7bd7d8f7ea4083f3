"""SMTP submission throughput: N concurrent authenticated STARTTLS sessions sending 2 KB
messages to `manage.py smtp_gateway` (started here on free loopback ports) for a fixed time.

    DATABASE_URL=... REDIS_URL=... .venv/bin/python bench/smtp_submission.py --processes 2

Prints accepted messages per second (250 after DATA). Uses the configured database: it
creates its own tenant, credential and verified domain there, and stops by itself.
`--sink` measures the protocol alone: the gateway answers 250 without calling `sending`
(AUTH is still real), which shows how much of the time is SMTP and TLS."""
import argparse
import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import aiosmtplib

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def setup_account():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dispatch_site.settings")
    os.environ.setdefault("DISPATCH_ENV", "development")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from domains.services import domain_mark_verified_for_development
    from tenants.models import Plan, Tenant, User
    from tenants.services import credential_create, credential_username, plans_seed

    call_command("migrate", verbosity=0)
    plans_seed()
    # Plan limits are not what this measures: a private plan that neither quota nor rate stops.
    plan, _ = Plan.objects.get_or_create(
        slug="smtp-bench", defaults=dict(name="SMTP bench", monthly_quota=2_000_000_000,
                                         rate_limit_per_minute=2_000_000_000, is_public=False),
    )
    stamp = f"{int(time.time())}-{os.getpid()}"
    user = User.objects.create_user(email=f"bench-{stamp}@bench.test", password=None)
    tenant = Tenant.objects.create(owner=user, name=f"SMTP bench {stamp}", plan=plan)
    domain_mark_verified_for_development(tenant=tenant, name="bench.example")
    credential, password = credential_create(tenant=tenant, label="bench")
    return credential_username(credential), password, settings.DISPATCH_SMTP_TLS_CERT


def message(number, size):
    head = (
        f"From: Bench <sender@bench.example>\r\nTo: rcpt{number % 50}@example.net\r\n"
        f"Subject: benchmark message {number}\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    line = "The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return (head + body).encode()


async def client(port, tls, username, password, size, stop_at, warm_until, counts, errors):
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, tls_context=tls, start_tls=True, timeout=30)
    await smtp.connect()
    await smtp.login(username, password)
    number = 0
    while time.monotonic() < stop_at:
        number += 1
        try:
            errs, _ = await smtp.sendmail("sender@bench.example", [f"rcpt{number % 50}@example.net"], message(number, size))
            if errs:
                errors.append(errs)
            elif time.monotonic() > warm_until:
                counts[0] += 1
        except aiosmtplib.SMTPException as exc:
            errors.append(repr(exc))
    await smtp.quit()


async def load(port, tls, username, password, *, clients, seconds, warmup, size):
    counts, errors = [0], []
    start = time.monotonic()
    warm_until = start + warmup
    stop_at = warm_until + seconds
    await asyncio.gather(*[
        client(port, tls, username, password, size, stop_at, warm_until, counts, errors) for _ in range(clients)
    ])
    return counts[0], errors


def serve_sink(port, processes, threads):
    """The gateway with `sending` cut out: sender, recipients and DATA are accepted at once."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dispatch_site.settings")
    import django

    django.setup()
    from smtp_gateway.handlers import SubmissionHandler
    from smtp_gateway.server import GatewayConfig, Listener, run_process, run_supervisor

    async def accept(*args):
        return None

    async def deliver(*args):
        return "250 2.0.0 OK (sink)"

    SubmissionHandler.check_sender = SubmissionHandler.check_recipient = accept
    SubmissionHandler.deliver = deliver
    config = GatewayConfig.from_settings(listeners=(Listener("submission", port),), db_threads=threads)
    if processes == 1:
        run_process(config, 5)
    else:
        run_supervisor(config, processes=processes, grace=5)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--sink", action="store_true", help="protocol only: do not call sending")
    parser.add_argument("--serve-sink", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sink:
        serve_sink(args.serve_sink, args.processes, args.threads)
        return

    username, password, cert = setup_account()
    port = free_port()
    env = dict(os.environ, DISPATCH_SMTP_BIND="127.0.0.1", DISPATCH_SMTP_STARTTLS_PORTS=str(port),
               DISPATCH_SMTP_TLS_PORTS="", LOG_LEVEL="WARNING")
    command = ["manage.py", "smtp_gateway"] if not args.sink else [__file__, "--serve-sink", str(port)]
    gateway = subprocess.Popen(
        [sys.executable, *command, "--processes", str(args.processes), "--threads", str(args.threads)],
        cwd=BASE_DIR, env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or gateway.poll() is not None:
                    raise SystemExit("gateway did not start")
                time.sleep(0.2)
        time.sleep(1)  # let every worker bind
        tls = ssl.create_default_context(cafile=cert)
        accepted, errors = asyncio.run(load(
            port, tls, username, password, clients=args.clients, seconds=args.seconds, warmup=args.warmup, size=args.size,
        ))
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(60)
    rate = accepted / args.seconds
    print(f"smtp submission: {accepted} messages accepted in {args.seconds:.0f} s with {args.clients} "
          f"STARTTLS sessions, {args.size}-byte messages, {args.processes} gateway process(es)"
          f"{' [sink: protocol only]' if args.sink else ''}: {rate:.0f} msg/s"
          f" ({len(errors)} errors{': ' + str(errors[:3]) if errors else ''})")


if __name__ == "__main__":
    main()
