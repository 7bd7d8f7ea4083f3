"""Webhook endpoints, durable events and signed deliveries with retries.

Flow: event_record() stores the Event and one Delivery per subscribed endpoint in the caller's
transaction and sends the delivery ids to the broker after commit. A worker claims a delivery with
a lease (conditional UPDATE), POSTs it outside any transaction and records the outcome under that
lease. The retry schedule lives in Delivery.next_attempt_at; the beat sweeper enqueues whatever is
due, so a broker outage or a lost task delays a webhook but never drops it."""
import json
import logging
import time
from datetime import UTC, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from dispatch_site import crypto, hot_reads
from dispatch_site.bulk_insert import insert_many, on_commit as after_rows_commit
from dispatch_site.errors import Conflict, ValidationFailed

from . import http_client, selectors, signing
from .models import EVENT_TYPES, TEST_EVENT_TYPE, Delivery, Endpoint, Event

logger = logging.getLogger(__name__)

# Seconds to wait before attempt 1, 2, ... 10: about three days in all.
RETRY_DELAYS = (0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 14 * 3600, 20 * 3600, 24 * 3600)
MAX_URL_LENGTH = 2048
MAX_ENDPOINTS_PER_TENANT = 20
# A task that was sent but never ran (lost message) is sent again after this long.
ENQUEUE_GRACE = timedelta(minutes=2)
SWEEP_BATCH = 500
_RETRYABLE = (Delivery.Status.PENDING, Delivery.Status.FAILED)


def rfc3339(moment):
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- endpoints ---------------------------------------------------------------------------------
def _validated_url(url):
    if len(url) > MAX_URL_LENGTH:
        raise ValidationFailed(f"url: at most {MAX_URL_LENGTH} characters", details={"url": ["too long"]})
    try:
        http_client.check_url(url)
    except http_client.UnsafeURL as exc:
        raise ValidationFailed(f"url: {exc}", details={"url": [str(exc)]}) from None
    return url


def _validated_events(events):
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise ValidationFailed("events: a non-empty list of event names is required", details={"events": ["required"]})
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        message = f"unknown event(s) {', '.join(unknown)}; allowed: {', '.join(EVENT_TYPES)}"
        raise ValidationFailed(f"events: {message}", details={"events": [message]})
    return list(dict.fromkeys(events))


def endpoint_create(*, tenant, url, events, secret=None):
    """Returns (endpoint, secret); the secret is shown to the tenant this once."""
    url = _validated_url(url)
    events = _validated_events(events)
    if Endpoint.objects.for_tenant(tenant).count() >= MAX_ENDPOINTS_PER_TENANT:
        raise Conflict(f"A tenant can have at most {MAX_ENDPOINTS_PER_TENANT} webhooks.", code="TOO_MANY_WEBHOOKS")
    if secret is None:
        secret = signing.generate_secret()
    else:
        try:
            signing.secret_key(secret)
        except signing.InvalidSecret as exc:
            raise ValidationFailed(f"secret: {exc}", details={"secret": [str(exc)]}) from None
    endpoint = Endpoint(tenant=tenant, url=url, events=events)
    endpoint.secret_encrypted = crypto.encrypt_text(secret, endpoint.secret_associated_data)
    endpoint.save()
    return endpoint, secret


def endpoint_secret(endpoint):
    return crypto.decrypt_text(endpoint.secret_encrypted, endpoint.secret_associated_data)


def endpoint_update(*, tenant, endpoint_id, url=None, events=None, enabled=None):
    endpoint = selectors.endpoint_get(tenant=tenant, endpoint_id=endpoint_id)
    if url is not None:
        endpoint.url = _validated_url(url)
    if events is not None:
        endpoint.events = _validated_events(events)
    if enabled is True and not endpoint.enabled:
        endpoint.enabled = True
        endpoint.disabled_reason = ""
        endpoint.disabled_at = None
        endpoint.failing_since = None
    endpoint.save()
    if enabled is False and endpoint.enabled:
        endpoint_disable(endpoint=endpoint, reason="")
        endpoint.refresh_from_db()
    return endpoint


def endpoint_delete(*, tenant, endpoint_id):
    selectors.endpoint_get(tenant=tenant, endpoint_id=endpoint_id).delete()


def endpoint_disable(*, endpoint, reason):
    """Switch an endpoint off (by the tenant with an empty reason, or by us with one) and stop
    the retries of its deliveries; they stay in the log and can be replayed."""
    now = timezone.now()
    with transaction.atomic():
        Endpoint.objects.filter(pk=endpoint.pk, enabled=True).update(
            enabled=False, disabled_reason=reason[:300], disabled_at=now, updated_at=now
        )
        Delivery.objects.filter(endpoint_id=endpoint.pk, status__in=_RETRYABLE, next_attempt_at__isnull=False).update(
            status=Delivery.Status.FAILED,
            next_attempt_at=None,
            last_error=(f"endpoint disabled: {reason}" if reason else "endpoint disabled")[:500],
        )
    if reason:
        logger.warning("webhook endpoint %s of tenant %s disabled: %s", endpoint.pk, endpoint.tenant_id, reason)


# --- events --------------------------------------------------------------------------------------
def event_record(*, tenant, event, payload):
    """Store `event` and a Delivery for each enabled endpoint subscribed to it, inside the
    caller's transaction; the deliveries are sent to the broker after commit."""
    return event_record_many(tenant=tenant, items=[(event, payload)])[0]


def event_record_many(*, tenant, items, endpoints=None):
    """event_record for many (event, payload) items of one tenant — the submission path records
    a `sent` per recipient: one Event INSERT, one endpoint query and one Delivery INSERT for
    the lot instead of three queries per event. `endpoints`: the tenant's enabled endpoint
    subscriptions if the caller read them already (a /send reads them with its sending domain,
    hot_reads.send_lookups, moments before), else they are read here."""
    if not items:
        return []
    now = timezone.now()
    stamp = rfc3339(now)
    records = insert_many(
        Event(tenant=tenant, type=event, created_at=now,
              payload={"event": event, "timestamp": stamp, "tenant_id": str(tenant.pk), **payload})
        for event, payload in items
    )
    if endpoints is None:
        endpoints = hot_reads.enabled_endpoint_subscriptions(tenant)
    deliveries = insert_many(
        Delivery(tenant_id=tenant.pk, event=record, endpoint_id=endpoint_id, webhook_id=record.webhook_id,
                 next_attempt_at=now, enqueued_at=now, created_at=now)
        for record in records
        for endpoint_id, subscribed in endpoints
        if record.type in subscribed
    )
    if deliveries:
        ids = [d.pk for d in deliveries]
        # Inside the submission's one statement (bulk_insert.one_statement) the rows are not
        # written yet: enqueue once they are.
        after_rows_commit(lambda: enqueue(ids))
    return records


def _deliveries_create(event, endpoint_ids, now):
    deliveries = Delivery.objects.bulk_create(
        Delivery(
            tenant_id=event.tenant_id,
            event=event,
            endpoint_id=endpoint_id,
            webhook_id=event.webhook_id,
            next_attempt_at=now,
            enqueued_at=now,
            created_at=now,
        )
        for endpoint_id in endpoint_ids
    )
    ids = [d.pk for d in deliveries]
    transaction.on_commit(lambda: enqueue(ids))
    return deliveries


def endpoint_send_test(*, tenant, endpoint_id):
    """A `webhook.test` event delivered to this one endpoint (through the normal queue)."""
    endpoint = selectors.endpoint_get(tenant=tenant, endpoint_id=endpoint_id)
    if not endpoint.enabled:
        raise Conflict("The webhook is disabled; enable it before sending a test.", code="WEBHOOK_DISABLED")
    now = timezone.now()
    with transaction.atomic():
        event = Event.objects.create(
            tenant=tenant,
            type=TEST_EVENT_TYPE,
            created_at=now,
            payload={
                "event": TEST_EVENT_TYPE,
                "timestamp": rfc3339(now),
                "tenant_id": str(tenant.pk),
                "webhook": str(endpoint.pk),
                "message": "This is a test event from Dispatch.",
            },
        )
        (delivery,) = _deliveries_create(event, [endpoint.pk], now)
    return delivery


def delivery_replay(*, tenant, endpoint_id, delivery_id):
    """Send a delivery again now, with the same webhook-id, starting a fresh retry schedule."""
    endpoint = selectors.endpoint_get(tenant=tenant, endpoint_id=endpoint_id)
    delivery = selectors.delivery_get(tenant=tenant, endpoint=endpoint, delivery_id=delivery_id)
    if not endpoint.enabled:
        raise Conflict("The webhook is disabled; enable it before replaying.", code="WEBHOOK_DISABLED")
    return delivery_requeue(delivery=delivery)


def delivery_requeue(*, delivery):
    now = timezone.now()
    updated = (
        Delivery.objects.filter(pk=delivery.pk)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(status=Delivery.Status.PENDING, attempts=0, next_attempt_at=now, enqueued_at=now, succeeded_at=None)
    )
    if not updated:
        raise Conflict("This delivery is being attempted right now.", code="DELIVERY_IN_PROGRESS")
    transaction.on_commit(lambda: enqueue([delivery.pk]))
    delivery.refresh_from_db()
    return delivery


# --- delivery ------------------------------------------------------------------------------------
_broker = {"down_until": 0.0}
# After a failed publish, do not wait on the broker again for this long: a worker emitting events
# for a batch of recipients would otherwise stall for the client's connect retries on every one.
BROKER_BACKOFF_SECONDS = 30


def enqueue(delivery_ids):
    """Send delivery ids to the broker. If it is down, leave them to the sweeper."""
    from .tasks import deliver_webhook

    for index, delivery_id in enumerate(delivery_ids):
        try:
            if time.monotonic() < _broker["down_until"]:
                raise ConnectionError("broker marked down")
            deliver_webhook.apply_async(args=[str(delivery_id)], retry=False)
        except Exception:  # noqa: BLE001 - any broker failure: the database row is the guarantee
            if time.monotonic() >= _broker["down_until"]:
                logger.warning("broker unavailable; webhook deliveries left to the sweeper", exc_info=True)
                _broker["down_until"] = time.monotonic() + BROKER_BACKOFF_SECONDS
            Delivery.objects.filter(pk__in=delivery_ids[index:]).update(enqueued_at=None)
            return


def deliveries_enqueue_due(*, limit=SWEEP_BATCH):
    """The beat sweeper: send every due delivery that is not queued or in flight."""
    now = timezone.now()
    ids = list(
        Delivery.objects.filter(status__in=_RETRYABLE, next_attempt_at__lte=now, endpoint__enabled=True)
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=now - ENQUEUE_GRACE))
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    if ids:
        Delivery.objects.filter(pk__in=ids).update(enqueued_at=now)
        enqueue(ids)
    return len(ids)


def _lease_seconds():
    return settings.DISPATCH_WEBHOOK_TIMEOUT + settings.DISPATCH_DNS_TIMEOUT + 60


def delivery_attempt(*, delivery_id):
    """One attempt of a due delivery. Returns the updated Delivery, or None when it was not
    due, already done, or claimed by another worker."""
    now = timezone.now()
    lease = now + timedelta(seconds=_lease_seconds())
    claimed = (
        Delivery.objects.filter(pk=delivery_id, status__in=_RETRYABLE, next_attempt_at__lte=now)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=lease, enqueued_at=None)
    )
    if not claimed:
        return None
    delivery = Delivery.objects.select_related("endpoint", "event").get(pk=delivery_id)
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        Delivery.objects.filter(pk=delivery.pk, lease_until=lease).update(
            status=Delivery.Status.FAILED, next_attempt_at=None, lease_until=None, last_error="endpoint disabled"
        )
        return Delivery.objects.get(pk=delivery.pk)

    try:
        body = json.dumps(delivery.event.payload, separators=(",", ":")).encode()
        headers = signing.signed_headers(
            secret=endpoint_secret(endpoint), webhook_id=delivery.webhook_id, timestamp=time.time(), body=body
        )
        result = http_client.post(endpoint.url, body=body, headers=headers)
    except crypto.DecryptionError:
        result = http_client.Result(error="the signing secret cannot be decrypted (encryption key missing?)")
    except Exception as exc:  # noqa: BLE001 - record it as a failed attempt rather than hold the lease
        logger.exception("webhook delivery %s: unexpected error", delivery.pk)
        result = http_client.Result(error=f"internal error: {type(exc).__name__}")
    _attempt_record(delivery, lease, result)
    return Delivery.objects.get(pk=delivery.pk)


def _attempt_record(delivery, lease, result):
    now = timezone.now()
    attempts = delivery.attempts + 1
    fields = {
        "attempts": F("attempts") + 1,
        "lease_until": None,
        "last_attempt_at": now,
        "last_response_code": result.status,
        "last_response_body": result.body,
        "last_error": result.error[:500],
    }
    gone = result.status == 410
    if result.ok:
        fields.update(status=Delivery.Status.SUCCEEDED, next_attempt_at=None, succeeded_at=now)
    elif gone:
        fields.update(status=Delivery.Status.FAILED, next_attempt_at=None)
    elif attempts >= len(RETRY_DELAYS):
        fields.update(status=Delivery.Status.EXHAUSTED, next_attempt_at=None)
    else:
        fields.update(status=Delivery.Status.FAILED, next_attempt_at=now + timedelta(seconds=RETRY_DELAYS[attempts]))
    if not Delivery.objects.filter(pk=delivery.pk, lease_until=lease).update(**fields):
        logger.warning("webhook delivery %s: lease lost before the result was recorded", delivery.pk)
    logger.info(
        "webhook delivery %s attempt %d to %s: %s %s (%d ms)",
        delivery.pk, attempts, delivery.endpoint_id, result.status, result.error, result.duration_ms,
    )
    _endpoint_health(delivery.endpoint, result, now)


def _endpoint_health(endpoint, result, now):
    endpoints = Endpoint.objects.filter(pk=endpoint.pk)
    if result.ok:
        endpoints.filter(failing_since__isnull=False).update(failing_since=None)
        return
    if result.status == 410:
        endpoint_disable(endpoint=endpoint, reason=f"The endpoint answered 410 Gone on {rfc3339(now)}.")
        return
    endpoints.filter(failing_since__isnull=True).update(failing_since=now)
    failing_since = endpoints.values_list("failing_since", flat=True).first()
    limit = timedelta(hours=settings.DISPATCH_WEBHOOK_DISABLE_AFTER_HOURS)
    if failing_since is not None and now - failing_since >= limit:
        endpoint_disable(
            endpoint=endpoint,
            reason=(
                f"Every delivery failed since {rfc3339(failing_since)} "
                f"({settings.DISPATCH_WEBHOOK_DISABLE_AFTER_HOURS} h or more)."
            ),
        )


def events_prune(*, batch=5000):
    """Delete events (and their delivery logs) older than DISPATCH_WEBHOOK_EVENT_RETENTION_DAYS,
    except those with a retry still scheduled."""
    cutoff = timezone.now() - timedelta(days=settings.DISPATCH_WEBHOOK_EVENT_RETENTION_DAYS)
    retrying = Delivery.objects.filter(status__in=_RETRYABLE, next_attempt_at__isnull=False).values("event_id")
    deleted = 0
    while True:
        ids = list(
            Event.objects.filter(created_at__lt=cutoff).exclude(pk__in=retrying).values_list("pk", flat=True)[:batch]
        )
        if not ids:
            return deleted
        Event.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
