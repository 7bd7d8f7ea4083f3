"""The one function every recipient-level transition goes through: sent, delivered, deferred,
bounced, failed, complained, suppressed, unsubscribed. It builds the payload (the webhook event
body, see docs/sending.md) and hands it to its sinks: webhooks (`_record`) and the usage
counters (tenants.limits.usage_count_event)."""
import datetime

from django.utils import timezone

EVENTS = ("sent", "delivered", "deferred", "bounced", "failed", "complained", "suppressed", "unsubscribed")


def rfc3339(moment) -> str:
    return moment.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_payload(event, *, recipient, message, timestamp=None, **details) -> dict:
    payload = {
        "event": event,
        "timestamp": rfc3339(timestamp or timezone.now()),
        "recipient": recipient.email,
        "sender": message.from_address,
        "message_id": message.message_id,
        "email_id": str(message.id),
        "tenant_id": str(message.tenant_id),
        "tags": list(message.tags or []),
        "metadata": dict(message.metadata or {}),
    }
    payload.update(details)
    return payload


def emit(event, *, recipient, message=None, tenant=None, **details):
    """Record `event` for `recipient` (a sending.models.Recipient). Pass `message` / `tenant`
    when the caller already has them loaded, to save queries. Extra keyword arguments become
    payload fields (e.g. response={"code": 550, "content": "..."}, bounce_classification=...)."""
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}")
    from tenants.limits import usage_count_event

    message = message or recipient.message
    tenant = tenant or message.tenant
    payload = build_payload(event, recipient=recipient, message=message, **details)
    _record(tenant=tenant, event=event, payload=payload)
    usage_count_event(tenant=tenant, event=event, bounce_type=details.get("bounce_type"), when=message.queued_at)
    return payload


def emit_many(items, *, tenant):
    """emit() for many recipients of one tenant at once (the submission path): items are
    (event, recipient, message) tuples; the sinks get them in one call. Submission events
    (sent, suppressed) add nothing to the usage counters: accepted recipients were counted
    when their quota was reserved."""
    records = []
    for event, recipient, message in items:
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}")
        records.append((event, build_payload(event, recipient=recipient, message=message)))
    if records:
        _record_many(tenant=tenant, items=records)


def _record_many(*, tenant, items):
    """Hands many events of one tenant to the webhooks sink in one call (3 queries in all)."""
    from webhooks.services import event_record_many

    event_record_many(tenant=tenant, items=items)


def _record(*, tenant, event, payload):
    """Hands the event to the webhooks sink (event store + endpoint deliveries)."""
    from webhooks.services import event_record

    event_record(tenant=tenant, event=event, payload=payload)
