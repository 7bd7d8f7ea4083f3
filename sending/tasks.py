"""Periodic housekeeping of the email log (beat: dispatch_site/beat.py)."""
from celery import shared_task

from . import retention, services


@shared_task(name="sending.tasks.delete_expired_emails", ignore_result=True)
def delete_expired_emails():
    """Email log entries past their plan's retention, in small batches (sending/retention.py)."""
    return retention.expired_messages_delete(max_batches=500)


@shared_task(name="sending.tasks.prune_idempotency_keys", ignore_result=True)
def prune_idempotency_keys():
    """Idempotency-Keys older than 24 h."""
    return services.idempotency_keys_prune()
