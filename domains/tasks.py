"""Periodic DNS re-checks of verified domains (beat: dispatch_site/beat.py)."""
from celery import shared_task

from . import services


@shared_task(name="domains.tasks.recheck_due_domains")
def recheck_due_domains():
    """Claim the domains whose re-check is due (committed) and check each in its own task."""
    ids = services.domains_claim_due_rechecks()
    for pk in ids:
        recheck_domain.delay(str(pk))
    return len(ids)


@shared_task(name="domains.tasks.recheck_domain")
def recheck_domain(domain_id):
    services.domain_recheck(domain_id=domain_id)
