"""Periodic usage work (beat: dispatch_site/beat.py)."""
from celery import shared_task

from . import compliance


@shared_task(name="tenants.tasks.compliance_sweep", ignore_result=True)
def compliance_sweep():
    """Flag / suspend tenants whose bounce or complaint rate is too high (tenants/compliance.py)."""
    return compliance.compliance_sweep()
