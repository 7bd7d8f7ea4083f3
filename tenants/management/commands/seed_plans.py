from django.core.management.base import BaseCommand

from tenants.services import plans_seed


class Command(BaseCommand):
    help = "Create the default plans if they are missing (never overwrites edits)."

    def handle(self, *args, **options):
        plans_seed()
        self.stdout.write("plans ready")
