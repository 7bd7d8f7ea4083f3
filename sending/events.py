"""The one function every recipient-level transition goes through: sent, delivered, deferred,
bounced, failed, complained, suppressed, unsubscribed. It builds the payload (the webhook event
body, see docs/sending.md) and hands it to its sinks: webhooks (`_record_many`) and the usage
counters (tenants.limits.usage_count_event)."""
import datetime
from collections import Counter

from django.utils import timezone

EVENTS = ("sent", "delivered", "deferred", "bounced", "failed", "complained", "suppressed", "unsubscribed")


def rfc3339(moment) -> str:
    return moment.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_payload(event, *, recipient, message, timestamp=None, **details) -> dict:
    return _payload(event, email=recipient.email, tenant_id=message.tenant_id, message=message,
                    timestamp=timestamp, details=details)


def _payload(event, *, email, tenant_id, message, timestamp=None, details=None) -> dict:
    """The webhook event body; `message` None (its log entry is gone) gives its fields null."""
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}")
    payload = {
        "event": event,
        "timestamp": rfc3339(timestamp or timezone.now()),
        "recipient": email,
        "sender": message.from_address if message is not None else None,
        "message_id": message.message_id if message is not None else None,
        "email_id": str(message.id) if message is not None else None,
        "tenant_id": str(tenant_id),
        "tags": list(message.tags or []) if message is not None else [],
        "metadata": dict(message.metadata or {}) if message is not None else {},
    }
    payload.update(details or {})
    return payload


def emit(event, *, recipient, message=None, tenant=None, **details):
    """Record `event` for `recipient` (a sending.models.Recipient). Pass `message` / `tenant`
    when the caller already has them loaded, to save queries. Extra keyword arguments become
    payload fields (e.g. response={"code": 550, "content": "..."}, bounce_classification=...,
    bounce_type="hard"|"soft", which the usage counters use). Returns the payload."""
    message = message or recipient.message
    return emit_many([(event, recipient, message, details)], tenant=tenant or message.tenant, count_usage=True)[0]


def emit_many(items, *, tenant, count_usage=False, endpoints=None):
    """emit() for many recipients of one tenant at once: items are (event, recipient, message)
    or (event, recipient, message, details) tuples; the sinks get them in one call. Returns the
    payloads. count_usage adds delivery outcomes to the usage counters (emit() and the delivery
    engine); the submission path passes False: its events (sent, suppressed) count nothing,
    accepted recipients were counted when their quota was reserved. `endpoints`: the tenant's
    enabled webhook endpoints if the caller already read them (event_record_many)."""
    from tenants.limits import current_period, usage_count_event

    records, usage, when = [], Counter(), {}
    for event, recipient, message, *rest in items:
        details = rest[0] if rest else {}
        records.append((event, build_payload(event, recipient=recipient, message=message, **details)))
        if count_usage:
            key = (event, details.get("bounce_type") or recipient.bounce_type, current_period(message.queued_at))
            usage[key] += 1
            when.setdefault(key, message.queued_at)
    if records:
        _record_many(tenant=tenant, items=records, endpoints=endpoints)
    for key, n in usage.items():
        usage_count_event(tenant=tenant, event=key[0], bounce_type=key[1], when=when[key], n=n)
    return [payload for _, payload in records]


def emit_for_address(event, *, tenant, email, **details):
    """Record `event` for an address whose message no longer exists (log retention deleted it):
    the payload has the same fields, the message's ones null. A one-click unsubscribe from an old
    email is the case: webhook consumers keeping their own lists in sync must still hear of it."""
    from tenants.limits import usage_count_event

    payload = _payload(event, email=email, tenant_id=tenant.pk, message=None, details=details)
    _record_many(tenant=tenant, items=[(event, payload)])
    usage_count_event(tenant=tenant, event=event)
    return payload


def _record_many(*, tenant, items, endpoints=None):
    """Hands (event, payload) items of one tenant to the webhooks sink in one call."""
    from webhooks.services import event_record_many

    event_record_many(tenant=tenant, items=items, endpoints=endpoints)
