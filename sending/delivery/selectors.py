"""Reads about the delivery queue."""
from django.db.models import Count, Min, Q
from django.utils import timezone

from sending.models import Recipient

Status = Recipient.Status


def queue_summary(*, tenant=None):
    """Counts of recipients waiting (pending = queued), being sent (sending) and waiting for a
    retry (deferred, with the next retry time), and the age of the oldest pending one."""
    rows = Recipient.objects.filter(status__in=[Status.QUEUED, Status.SENDING, Status.DEFERRED])
    if tenant is not None:
        rows = rows.filter(tenant=tenant)
    summary = rows.aggregate(
        pending=Count("id", filter=Q(status=Status.QUEUED)),
        sending=Count("id", filter=Q(status=Status.SENDING)),
        deferred=Count("id", filter=Q(status=Status.DEFERRED)),
        next_retry_at=Min("next_attempt_at", filter=Q(status=Status.DEFERRED)),
        oldest_pending=Min("message__queued_at", filter=Q(status=Status.QUEUED)),
    )
    oldest = summary.pop("oldest_pending")
    summary["oldest_pending_age_seconds"] = max(0, int((timezone.now() - oldest).total_seconds())) if oldest else None
    return summary


def captured_copy(recipient):
    """Capture mode: the exact signed bytes that would have gone to this recipient (None when
    nothing was captured, or the copy was erased with the message body)."""
    from dispatch_site import crypto

    blob = Recipient.objects.filter(pk=recipient.pk).values_list("captured_message", flat=True).first()
    if blob is None:
        return None
    return crypto.decrypt(bytes(blob), recipient.captured_associated_data)
