"""Placeholder until the SMTP relay issue lands: keeps the process slot in Procfile.dev."""
import time

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "SMTP gateway (not yet implemented: waits)."

    def handle(self, *args, **options):
        self.stdout.write("smtp_gateway: not implemented yet")
        while True:
            time.sleep(3600)
