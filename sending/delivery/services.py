"""Delivery operations other than sending itself: the sweeper that keeps the queue moving,
and the operator actions (retry now, fail) used by the admin."""
import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from sending.models import Recipient

from . import engine, recording

log = logging.getLogger(__name__)
Status = Recipient.Status

DELIVERY_TASK = "sending.delivery.tasks.deliver_recipients"
SWEEP_LIMIT = 5000  # recipients re-enqueued per sweep at most, so a backlog is not doubled


def deliver_recipients(*, recipient_ids):
    return engine.deliver(recipient_ids)


def due_recipients(*, now=None, limit=SWEEP_LIMIT):
    """(id, domain) of recipients a worker should pick up: leases that expired (the worker died),
    and queued or deferred rows that are due and were not enqueued recently."""
    now = now or timezone.now()
    # Not enqueued recently: a row whose task has not claimed it DISPATCH_DELIVERY_REENQUEUE_AFTER
    # seconds after it was enqueued lost that task (broker down at submit time or restarted,
    # worker killed); enqueueing it sooner would only pile duplicates onto a busy queue.
    since = now - timedelta(seconds=settings.DISPATCH_DELIVERY_REENQUEUE_AFTER)
    not_recently_enqueued = Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=since)
    due = Q(status__in=[Status.QUEUED, Status.DEFERRED], next_attempt_at__lte=now)
    expired = Q(status=Status.SENDING, lease_until__lt=now)
    return list(Recipient.objects.filter((due | expired) & not_recently_enqueued).order_by("next_attempt_at").values_list("id", "domain")[:limit])


def sweep(*, now=None):
    """Apply the effects a dead worker left pending, then enqueue delivery tasks for every due
    recipient, grouped by domain. Returns how many recipients were enqueued."""
    from dispatch_site.celery import app as celery_app

    now = now or timezone.now()
    recording.replay_pending_effects(now=now)
    by_domain = {}
    for recipient_id, domain in due_recipients(now=now):
        by_domain.setdefault(domain, []).append(recipient_id)
    enqueued = 0
    size = settings.DISPATCH_DELIVERY_BATCH_SIZE
    for ids in by_domain.values():
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            celery_app.send_task(DELIVERY_TASK, args=[chunk], queue="delivery", retry=False)
            Recipient.objects.filter(id__in=chunk).update(enqueued_at=now)
            enqueued += len(chunk)
    if enqueued:
        log.info("sweeper enqueued %d recipient(s)", enqueued)
    return enqueued


def recipients_retry_now(*, recipient_ids):
    """Operator action: queued/deferred recipients become due now and are enqueued."""
    from sending.services import enqueue_delivery

    now = timezone.now()
    ids = list(
        Recipient.objects.filter(id__in=recipient_ids, status__in=[Status.QUEUED, Status.DEFERRED]).values_list("id", flat=True)
    )
    Recipient.objects.filter(id__in=ids).update(next_attempt_at=now, enqueued_at=now)
    transaction.on_commit(lambda: enqueue_delivery(ids))
    return len(ids)


def recipients_fail(*, recipient_ids, reason="failed by an operator"):
    """Operator action: give up on queued/deferred recipients (status failed, event emitted).
    Recipients being sent right now are left alone: their outcome is about to be recorded."""
    from sending.events import emit
    from sending.services import message_refresh_status

    now = timezone.now()
    failed = 0
    for recipient in engine.load_recipients(list(recipient_ids)):
        with transaction.atomic():
            updated = Recipient.objects.filter(pk=recipient.pk, status__in=[Status.QUEUED, Status.DEFERRED]).update(
                status=Status.FAILED, failed_at=now, last_response_text=reason[:1000]
            )
            if not updated:
                continue
            recipient.status, recipient.failed_at, recipient.last_response_text = Status.FAILED, now, reason[:1000]
            emit("failed", recipient=recipient, message=recipient.message, tenant=recipient.tenant,
                 response={"code": None, "enhanced_status": None, "content": reason})
            message_refresh_status(message_id=recipient.message_id)
            failed += 1
    return failed
