"""Log retention: email log entries (Message rows with their recipients, delivery attempts and
encrypted body) are deleted once their expires_at has passed. expires_at is fixed at send time
from the plan's log_retention_days, so a plan change does not shorten or extend what is kept.

Deletion runs in small batches (DISPATCH_RETENTION_BATCH_SIZE messages per transaction), so
no transaction holds many row locks or runs long; the web and delivery processes keep working
while a large backlog drains. Usage counters (tenants.UsageCounter) are separate rows and are
never touched: monthly usage survives the deletion of its log entries. A message whose
recipients are still being delivered (queued, sending, deferred) is kept until they are done.
"""
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import DeliveryAttempt, Message, Recipient

log = logging.getLogger(__name__)

_IN_FLIGHT = (Recipient.Status.QUEUED, Recipient.Status.SENDING, Recipient.Status.DEFERRED)


def expired_messages_delete(*, now=None, batch_size=None, max_batches=None) -> int:
    """Delete expired log entries in batches; returns the number of messages deleted.
    `max_batches` bounds one run (the next run continues)."""
    now = now or timezone.now()
    batch_size = batch_size or settings.DISPATCH_RETENTION_BATCH_SIZE
    deleted = batches = 0
    while max_batches is None or batches < max_batches:
        count = _delete_batch(now, batch_size)
        deleted += count
        batches += 1
        if count < batch_size:
            break
    if deleted:
        log.info("retention: deleted %d expired email log entries", deleted)
    return deleted


def _delete_batch(now, batch_size) -> int:
    expired = (
        Message.objects.filter(expires_at__lt=now)
        .exclude(recipients__status__in=_IN_FLIGHT)
        .order_by("expires_at")
        .values_list("id", flat=True)[:batch_size]
    )
    with transaction.atomic():
        # Lock this batch (skipping rows another sweeper holds) so concurrent runs do not collide.
        ids = list(Message.objects.filter(pk__in=list(expired)).select_for_update(skip_locked=True).values_list("id", flat=True))
        if not ids:
            return 0
        DeliveryAttempt.objects.filter(recipient__message_id__in=ids).delete()
        Recipient.objects.filter(message_id__in=ids).delete()
        Message.objects.filter(pk__in=ids).delete()
    return len(ids)
