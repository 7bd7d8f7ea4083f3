"""`manage.py smtp_gateway`: the SMTP submission gateway (see docs/smtp.md)."""
import logging
import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from smtp_gateway.server import GatewayConfig, run_process, run_supervisor


class Command(BaseCommand):
    help = ("Run the SMTP gateway (submission with STARTTLS / implicit TLS and AUTH; the inbound MX for "
            "bounce and complaint reports on DISPATCH_SMTP_INBOUND_PORT when it is > 0).")

    def add_arguments(self, parser):
        parser.add_argument(
            "--processes", type=int, default=1,
            help="Worker processes sharing the ports via SO_REUSEPORT (default 1; use the core count).",
        )
        parser.add_argument(
            "--threads", type=int, default=8, help="Database threads per process (default 8).",
        )
        parser.add_argument(
            "--grace", type=float, default=30.0,
            help="Seconds to let in-flight DATA finish after SIGTERM (default 30).",
        )

    def handle(self, *args, processes, threads, grace, verbosity, **options):
        if processes < 1 or threads < 1 or grace < 0:
            raise CommandError("--processes and --threads must be >= 1, --grace >= 0")
        # aiosmtpd logs every command at INFO: far too much for a busy gateway.
        logging.getLogger("mail.log").setLevel(logging.DEBUG if verbosity >= 3 else logging.WARNING)
        # The gateway is long-lived: keep database connections instead of one per message, and
        # skip the per-call health check (a SELECT 1 before every call): a connection that fails
        # is closed after that call (smtp_gateway.db) and the client is told to retry (451).
        database = settings.DATABASES["default"]
        if not database["ENGINE"].endswith("sqlite3"):
            database["CONN_MAX_AGE"] = max(database.get("CONN_MAX_AGE") or 0, 600)
            database["CONN_HEALTH_CHECKS"] = False
        config = GatewayConfig.from_settings(db_threads=threads)
        self.stdout.write(
            f"smtp_gateway: pid {os.getpid()}, {processes} process(es), ports "
            + ", ".join(f"{l.port}{'/tls' if l.implicit_tls else ''} ({l.role})" for l in config.listeners)
        )
        if processes == 1:
            run_process(config, grace)
            return
        code = run_supervisor(config, processes=processes, grace=grace)
        if code:
            raise CommandError("a gateway worker exited with an error")
