"""The one function every recipient-level transition goes through: sent, delivered, deferred,
bounced, failed, complained, suppressed, unsubscribed. It builds the payload (the webhook event
body, see docs/sending.md) and hands it to the event sinks in `_record`."""
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
    message = message or recipient.message
    payload = build_payload(event, recipient=recipient, message=message, **details)
    _record(tenant=tenant or message.tenant, event=event, payload=payload)
    return payload


def emit_many(items, *, tenant):
    """emit() for many recipients of one tenant at once (the submission path): items are
    (event, recipient, message) tuples; the sinks get them in one call."""
    records = []
    for event, recipient, message in items:
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}")
        records.append((event, build_payload(event, recipient=recipient, message=message)))
    if records:
        _record_many(tenant=tenant, items=records)


def _record_many(*, tenant, items):
    from webhooks import services as webhooks

    record_many = getattr(webhooks, "event_record_many", None)  # batch API requested from webhooks
    if record_many is not None:
        record_many(tenant=tenant, items=items)
        return
    for event, payload in items:
        _record(tenant=tenant, event=event, payload=payload)


def _record(*, tenant, event, payload):
    """Hands the event to its sinks: webhooks (and usage counting, wired by the usage issue)."""
    from webhooks.services import event_record

    event_record(tenant=tenant, event=event, payload=payload)
