"""Recording delivery outcomes, in two steps.

1. The ledger (`Recorder.record`): right after the server's reply, ONE conditional UPDATE of the
   recipient row — status, reply, timestamps, next retry — guarded by the worker's lease
   (WHERE status='sending' AND lease_until=<lease>), committed before the next message is sent.
   This is what makes "never sent twice" hold: after a crash only recipients without a recorded
   outcome are sent again. The row keeps `effects_pending=True` and its lease value.
2. The effects (`Recorder.flush`, every FLUSH_EVERY outcomes or FLUSH_SECONDS): in one
   transaction for the group, the DeliveryAttempt rows, the events (sending.events.emit_many), hard
   bounce suppressions and the messages' aggregate status; `effects_pending` is cleared in the
   same transaction. If the worker dies in between, the sweeper replays the effects of rows whose
   lease has expired (`replay_pending_effects`), so no event is lost either.

Batching step 2 is what keeps the per-message cost at a few statements instead of a dozen.
"""
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from django.conf import settings
from django.db import connection as db, transaction
from django.utils import timezone

from dispatch_site.bulk_insert import copy_rows, insert_many
from sending.models import DeliveryAttempt, Message, Recipient

log = logging.getLogger(__name__)
Status = Recipient.Status
Outcome = DeliveryAttempt.Outcome

FLUSH_EVERY = 50
FLUSH_SECONDS = 1.0
_TABLE = Recipient._meta.db_table
_LEASE_FIELD = Recipient._meta.get_field("lease_until")
_OUTCOME_OF_STATUS = {
    Status.DELIVERED: Outcome.DELIVERED,
    Status.DEFERRED: Outcome.DEFERRED,
    Status.BOUNCED: Outcome.BOUNCED,
    Status.FAILED: Outcome.FAILED,
}


@dataclass
class Effect:
    recipient: Recipient
    outcome: str
    result: object  # engine.Result
    classification: object  # bounces Classification or None
    started_at: datetime
    duration_ms: int


def retry_delay(attempts):
    """Exponential backoff with +-25 % jitter, capped."""
    base = settings.DISPATCH_RETRY_BASE_DELAY * (2 ** min(max(attempts - 1, 0), 30))
    return min(base, settings.DISPATCH_RETRY_MAX_DELAY) * random.uniform(0.75, 1.25)


def ledger_fields(recipient, result, now):
    """(outcome, fields for the recipient row, classification) for `result`."""
    outcome = result.outcome
    fields = {
        "last_response_code": result.code,
        "last_enhanced_status": result.enhanced[:16],
        "last_response_text": result.text[:1000],
    }
    classification = None
    if outcome == Outcome.DEFERRED:
        expires = recipient.message.queued_at + timedelta(seconds=settings.DISPATCH_MAX_QUEUE_LIFETIME)
        if now >= expires:
            outcome = Outcome.FAILED
            fields["last_response_text"] = (
                f"expired after {settings.DISPATCH_MAX_QUEUE_LIFETIME} s in the queue; last error: {result.reply_text}"
            )[:1000]
            fields["bounce_class"] = "MessageExpired"
        else:
            delay = timedelta(seconds=retry_delay(recipient.attempts + 1))
            fields.update(status=Status.DEFERRED, next_attempt_at=min(now + delay, expires))
    if outcome == Outcome.DELIVERED:
        fields.update(status=Status.DELIVERED, delivered_at=now)
    elif outcome == Outcome.BOUNCED:
        from sending.bounces.classify import classify_reply

        classification = classify_reply(result.code, result.enhanced, result.text)
        fields.update(status=Status.BOUNCED, bounced_at=now, bounce_class=classification.bounce_class, bounce_type=classification.disposition)
    elif outcome == Outcome.FAILED:
        fields.update(status=Status.FAILED, failed_at=now)
    return outcome, fields, classification


# After a remote 250 the outcome MUST reach the ledger, or the message is sent again when the
# lease expires. A dropped connection (PostgreSQL restart, failover, a killed backend) is retried
# on a new connection for about 15 s before giving up.
RECORD_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)


def _execute_with_reconnect(sql, params):
    """(rowcount, retried) of an autocommitted statement, retried on a fresh connection when
    the connection fails. Inside a transaction it is not retried (the transaction is lost)."""
    from django.db import InterfaceError, OperationalError

    for attempt, delay in enumerate((0.0, *RECORD_RETRY_DELAYS)):
        if delay:
            time.sleep(delay)
        try:
            with db.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.rowcount, attempt > 0
        except (OperationalError, InterfaceError) as exc:
            if db.in_atomic_block or attempt == len(RECORD_RETRY_DELAYS):
                raise
            log.warning("recording an outcome failed (%s); retrying on a new connection in %.1f s",
                        exc, RECORD_RETRY_DELAYS[attempt])
            db.close()  # the next cursor connects again


def _recorded_under(recipient_id, lease_value):
    """None when the row does not carry an outcome recorded under `lease_value`; else whether
    its effects are still pending."""
    # The lease is compared in SQL, as the ledger UPDATE's guard compares it: `lease_value` is in
    # the database's form (a string on SQLite), which the column read back would not be.
    with db.cursor() as cursor:
        cursor.execute(f"SELECT status, effects_pending FROM {_TABLE} WHERE id = %s AND lease_until = %s",
                       [recipient_id, lease_value])
        row = cursor.fetchone()
    if row is None or row[0] == Status.SENDING:
        return None
    return bool(row[1])


@lru_cache(maxsize=64)
def _ledger_statement(names):
    """(SQL, model fields) of the ledger UPDATE setting the fields `names`: a few shapes (one
    per outcome, capture mode's), each written once instead of for every message."""
    model_fields = [Recipient._meta.get_field(name) for name in names]
    columns = ", ".join(f"{field.column} = %s" for field in model_fields)
    sql = (f"UPDATE {_TABLE} SET attempts = attempts + 1, effects_pending = %s, {columns} "
           "WHERE id = %s AND status = %s AND lease_until = %s")
    return sql, model_fields


class Recorder:
    def __init__(self):
        self.effects = []
        self._first_at = None

    def record(self, recipient, result, started, *, lease, **extra):
        """Commit the outcome if `lease` still holds the row. Returns False when it does not."""
        now = timezone.now()
        outcome, fields, classification = ledger_fields(recipient, result, now)
        fields.update(extra)
        # Raw SQL: this runs once per message, and the ORM's query building costs more than the query.
        sql, model_fields = _ledger_statement(tuple(fields))
        values = [field.get_db_prep_save(value, db) for field, value in zip(model_fields, fields.values())]
        lease_value = _LEASE_FIELD.get_db_prep_value(lease, db)
        updated, retried = _execute_with_reconnect(sql, [True, *values, recipient.pk, Status.SENDING, lease_value])
        if not updated and retried:
            # The attempt that failed may have committed before its reply was lost.
            mine = _recorded_under(recipient.pk, lease_value)
            if mine is not None:
                log.info("recipient %s: outcome was recorded by the attempt whose reply was lost", recipient.pk)
                if not mine:
                    return True  # and its effects were replayed meanwhile: nothing left to do
                updated = 1
        if not updated:
            log.warning("recipient %s: lease lost before its outcome (%s) was recorded", recipient.pk, outcome)
            return False
        for name, value in fields.items():
            setattr(recipient, name, value)
        recipient.attempts += 1
        elapsed = time.monotonic() - started
        self.effects.append(Effect(recipient, outcome, result, classification, now - timedelta(seconds=elapsed), int(elapsed * 1000)))
        if self._first_at is None:
            self._first_at = time.monotonic()
        if len(self.effects) >= FLUSH_EVERY or time.monotonic() - self._first_at >= FLUSH_SECONDS:
            self.flush()
        return True

    def flush(self):
        if not self.effects:
            return
        effects, self.effects, self._first_at = self.effects, [], None
        by_id = {effect.recipient.id: effect for effect in effects}
        with transaction.atomic():
            # Whoever clears the flag applies the effects (the sweeper may replay a slow worker's).
            mine = set(_take_own_pending(list(by_id)))
            apply_effects([effect for effect in effects if effect.recipient.id in mine])


def _take_own_pending(ids):
    """_take_pending for the rows `ids` (a worker's own outcomes), in one fixed statement on
    PostgreSQL: lock, clear and return in a single round trip, and no query to compile per flush."""
    if db.vendor != "postgresql":
        return _take_pending(Recipient.objects.filter(id__in=ids))
    with db.cursor() as cursor:
        cursor.execute(_TAKE_OWN_PENDING, [ids])
        return [row[0] for row in cursor.fetchall()]


# The inner SELECT is _take_pending's (FOR UPDATE SKIP LOCKED re-checks effects_pending on the
# row's latest version, so two takers never both get a row); the UPDATE clears what it locked.
_TAKE_OWN_PENDING = (
    f"UPDATE {_TABLE} SET effects_pending = false, lease_until = NULL WHERE id IN "
    f"(SELECT id FROM {_TABLE} WHERE id = ANY(%s) AND effects_pending FOR UPDATE SKIP LOCKED) RETURNING id"
)


def _take_pending(rows, limit=None):
    """Clear `effects_pending` on the given rows (locked; rows another transaction holds are
    skipped) and return their ids: whoever clears the flag applies the effects."""
    pending = rows.select_for_update(skip_locked=True).filter(effects_pending=True).values_list("id", flat=True)
    ids = list(pending[:limit] if limit else pending)
    Recipient.objects.filter(id__in=ids).update(effects_pending=False, lease_until=None)
    return ids


def apply_effects(effects):
    """Attempt rows, events, suppressions and message status for recorded outcomes (called
    inside a transaction)."""
    if not effects:
        return
    _insert_attempts(effects)
    refresh_messages({effect.recipient.message_id for effect in effects})
    # Events last: emit_many ends with the UPDATE of the tenant's monthly usage counter row, which
    # submissions (quota reservation) also UPDATE; taking that row lock last keeps it held only
    # until the commit that follows, not across the other statements of this transaction.
    _emit(effects)
    for effect in effects:
        if effect.classification is None:
            continue
        if effect.classification.disposition == "hard":
            _suppress(effect)
        elif effect.classification.disposition == "soft" and effect.outcome == Outcome.BOUNCED:
            _apply_soft_bounce_rule(effect)


# DeliveryAttempt's columns as _insert_attempts writes them (its id comes from the column's default).
_ATTEMPT_COLUMNS = ("tenant_id", "recipient_id", "started_at", "duration_ms", "mx_host", "remote_ip",
                    "response_code", "enhanced_status", "response_text", "outcome")


def _attempt_values(e):
    return (e.recipient.tenant_id, e.recipient.id, e.started_at, e.duration_ms, e.result.mx_host[:255],
            e.result.remote_ip[:45], e.result.code, e.result.enhanced[:16], e.recipient.last_response_text, str(e.outcome))


def _insert_attempts(effects):
    """One DeliveryAttempt row per effect. On PostgreSQL a COPY of plain values: no model
    instances to build and read back field by field, and no round trip for the ids first
    (insert_many takes them from the sequence to set them on the instances; nobody reads them
    here). The values need no adapting: UUID, int, aware datetime and str are psycopg's own."""
    if db.vendor != "postgresql":
        insert_many(DeliveryAttempt(**dict(zip(_ATTEMPT_COLUMNS, _attempt_values(e)))) for e in effects)
        return
    copy_rows(db, DeliveryAttempt._meta.db_table, _ATTEMPT_COLUMNS, map(_attempt_values, effects))


def _emit(effects):
    """One sending.events.emit_many call per tenant (events, webhook deliveries, usage counters)."""
    from sending.events import emit_many

    by_tenant = {}
    for effect in effects:
        recipient = effect.recipient
        by_tenant.setdefault(recipient.tenant_id, (recipient.tenant, []))[1].append(
            (str(effect.outcome), recipient, recipient.message, _event_details(effect))
        )
    for tenant, items in by_tenant.values():
        emit_many(items, tenant=tenant, count_usage=True)


def _event_details(effect):
    from sending.events import rfc3339

    recipient, result = effect.recipient, effect.result
    details = {
        "response": {"code": result.code, "enhanced_status": result.enhanced or None, "content": recipient.last_response_text},
        "attempt": recipient.attempts,
    }
    if result.mx_host:
        details["mx_host"] = result.mx_host
    if effect.outcome == Outcome.DEFERRED:
        details["next_attempt_at"] = rfc3339(recipient.next_attempt_at)
    if effect.classification is not None:
        details["bounce_classification"] = effect.classification.bounce_class
        details["bounce_type"] = effect.classification.disposition
    return details


def _suppress(effect):
    from sending.suppressions import suppression_add

    recipient = effect.recipient
    suppression_add(
        tenant=recipient.tenant,
        email=recipient.email,
        reason=f"hard bounce: {effect.result.reply_text}"[:1000],
        source="bounce",
        bounce_class=effect.classification.bounce_class,
        source_message=recipient.message,
    )


def _apply_soft_bounce_rule(effect):
    """Repeated soft bounces (a 5xx the classifier calls soft, e.g. mailbox full) may suppress
    the address, as for bounce reports: DISPATCH_SOFT_BOUNCE_SUPPRESS_AFTER (0 = off)."""
    if settings.DISPATCH_SOFT_BOUNCE_SUPPRESS_AFTER <= 0:
        return
    from sending.bounces.ingest import soft_bounce_rule_apply

    recipient = effect.recipient
    soft_bounce_rule_apply(tenant=recipient.tenant, email=recipient.email,
                           bounce_class=effect.classification.bounce_class, source_message=recipient.message)


def refresh_messages(message_ids):
    """sending.services.message_refresh_status for many messages, in two fixed statements: lock
    the message rows, then one UPDATE from the aggregate of their recipients. The lock comes in
    its own statement on purpose: a concurrent refresh of the same message waits there, and the
    UPDATE that follows takes a new snapshot (READ COMMITTED) that sees what the other committed.
    One statement would aggregate from a snapshot taken before the wait and could write a stale
    status last."""
    ids = sorted(message_ids)
    if not ids:
        return
    if db.vendor != "postgresql":
        from sending.services import message_refresh_status

        for message_id in ids:
            message_refresh_status(message_id=message_id)
        return
    lock, update = _refresh_sql()
    with db.cursor() as cursor:
        cursor.execute(lock, [ids])
        cursor.execute(update, [ids])


@lru_cache(maxsize=None)
def _refresh_sql():
    """(lock, update) statements of refresh_messages. The CASE is sending.services.aggregate_status
    in SQL (tests/delivery/test_refresh_messages.py checks them against each other for every mix
    of recipient states); the bounce type is "hard" if any recipient's is, else "soft" if any."""
    quote = db.ops.quote_name
    message, recipient = quote(Message._meta.db_table), quote(Recipient._meta.db_table)
    q, s, d = (f"count(*) FILTER (WHERE status = '{status}')" for status in (Status.QUEUED, Status.SENDING, Status.DEFERRED))
    ok, bounced, failed = (f"count(*) FILTER (WHERE status = '{status}')" for status in (Status.DELIVERED, Status.BOUNCED, Status.FAILED))
    M = Message.Status
    status = (
        f"CASE WHEN {q} + {s} + {d} > 0 THEN "
        f"CASE WHEN {s} + {d} + {ok} + {bounced} + {failed} = 0 THEN '{M.QUEUED}' "
        f"WHEN {d} > 0 AND {s} = 0 THEN '{M.DEFERRED}' ELSE '{M.SENDING}' END "
        f"WHEN {ok} + {bounced} + {failed} = 0 THEN '{M.SUPPRESSED}' "
        f"WHEN {bounced} + {failed} = 0 THEN '{M.DELIVERED}' "
        f"WHEN {ok} > 0 THEN '{M.PARTIALLY_DELIVERED}' "
        f"WHEN {bounced} > 0 THEN '{M.BOUNCED}' ELSE '{M.FAILED}' END"
    )
    hard, soft = Message.BounceType.HARD, Message.BounceType.SOFT
    bounce_type = (
        f"CASE WHEN bool_or(bounce_type = '{hard}') THEN '{hard}' WHEN bool_or(bounce_type = '{soft}') THEN '{soft}' END"
    )
    lock = f"SELECT id FROM {message} WHERE id = ANY(%s) ORDER BY id FOR UPDATE"
    update = (
        f"UPDATE {message} m SET status = a.status, bounce_type = a.bounce_type, "
        "delivered_at = a.delivered_at, bounced_at = a.bounced_at "
        f"FROM (SELECT message_id, {status} AS status, {bounce_type} AS bounce_type, "
        "max(delivered_at) AS delivered_at, max(bounced_at) AS bounced_at "
        f"FROM {recipient} WHERE message_id = ANY(%s) GROUP BY message_id) a "
        "WHERE m.id = a.message_id"
    )
    return lock, update


def replay_pending_effects(*, now=None, limit=1000):
    """The effects of outcomes a dead worker recorded but never applied (lease expired)."""
    from .engine import Result, load_recipients

    now = now or timezone.now()
    with transaction.atomic():
        ids = _take_pending(Recipient.objects.filter(lease_until__lt=now), limit)
        effects = []
        for recipient in load_recipients(ids):
            outcome = _OUTCOME_OF_STATUS.get(recipient.status)
            if outcome is None:
                continue
            classification = None
            if outcome == Outcome.BOUNCED:
                from sending.bounces.classify import Classification

                classification = Classification(recipient.bounce_class, recipient.bounce_type or "soft")
            result = Result(outcome, recipient.last_response_code, recipient.last_enhanced_status, recipient.last_response_text)
            effects.append(Effect(recipient, outcome, result, classification, now, 0))
        apply_effects(effects)
    if effects:
        log.warning("replayed the effects of %d outcome(s) recorded by a worker that died", len(effects))
    return len(effects)
