"""Delivery operations other than sending itself: the sweeper that keeps the queue moving,
and the operator actions (retry now, fail) used by the admin."""
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from dispatch_site.advisory_redis import AdvisoryRedis
from sending.models import Recipient

from . import engine, recording

log = logging.getLogger(__name__)
Status = Recipient.Status

DELIVERY_TASK = "sending.delivery.tasks.deliver_recipients"
SWEEP_LIMIT = 5000  # recipients re-enqueued per sweep at most, so a backlog is not doubled


def deliver_recipients(*, recipient_ids):
    return engine.deliver(recipient_ids)


# --- coalesced delivery kicks ----------------------------------------------------------------
# Publishing one Celery task per submission cost the submitting process ~2.7 ms CPU each and
# made workers run mostly-empty claims. Instead a submission publishes a delivery task only when
# no kick is outstanding (Redis SET NX with a short expiry), and the task, once its own rows are
# done, keeps claiming due recipients in batches until none are left (drain). Before its last,
# empty claim it deletes the kick key, so a submission committed after that claim publishes a
# new task: nothing is stranded. Under sustained load the key expires every
# DISPATCH_DELIVERY_KICK_INTERVAL_MS and the next submission brings one more worker in. A drain
# stops after DISPATCH_DELIVERY_DRAIN_SECONDS and re-publishes itself, so other queues' tasks
# get their turn. Without Redis every submission publishes (as before); the sweeper stays the
# safety net for anything lost.
KICK_KEY = "dispatch:delivery:kick"
_kick_redis = AdvisoryRedis("delivery kick", timeout=0.5)


def kick_needed():
    """True if the caller should publish a delivery task (no outstanding kick, or Redis down)."""
    client = _kick_redis.client()
    if client is None:
        return True
    try:
        return bool(client.set(KICK_KEY, "1", nx=True, px=settings.DISPATCH_DELIVERY_KICK_INTERVAL_MS))
    except Exception as exc:  # noqa: BLE001 - Redis trouble: publish, as without coalescing
        _kick_redis.failed(exc)
        return True


def _kick_clear():
    client = _kick_redis.client()
    if client is None:
        return
    try:
        client.delete(KICK_KEY)
    except Exception as exc:  # noqa: BLE001 - the key expires by itself
        _kick_redis.failed(exc)


def drain(*, seconds=None):
    """Claim and deliver due recipients batch after batch until none are left (or `seconds`
    have passed: then returns False, the caller re-publishes). Returns True when drained."""
    from django.db import close_old_connections

    seconds = settings.DISPATCH_DELIVERY_DRAIN_SECONDS if seconds is None else seconds
    deadline = time.monotonic() + seconds
    context = engine.new_context()
    cleared = False
    while True:
        lease, recipients = engine.claim_due()
        if recipients:
            cleared = False
            engine.deliver_claimed(lease, recipients, context)
            if time.monotonic() > deadline:
                return False
            close_old_connections()
            if len(recipients) < settings.DISPATCH_DELIVERY_BATCH_SIZE:
                # A partial batch: let a few more submissions arrive before the next claim, so
                # claim + effects (about a dozen statements) are shared by several messages.
                time.sleep(settings.DISPATCH_DELIVERY_DRAIN_PAUSE_MS / 1000)
            continue
        if cleared:
            return True
        # Nothing due: clear the kick, then look once more — a submission that committed before
        # the clear is seen by that claim, one that commits after it publishes its own task.
        _kick_clear()
        cleared = True


def publish_drain():
    from dispatch_site.celery import app as celery_app

    try:
        celery_app.send_task(DELIVERY_TASK, args=[[]], queue="delivery", retry=False)
    except Exception:  # noqa: BLE001 - the sweeper recovers
        log.warning("could not re-publish the delivery drain; the sweeper will pick the queue up", exc_info=True)


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
