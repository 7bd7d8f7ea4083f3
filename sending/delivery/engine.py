"""The delivery engine: claim recipients, deliver them per destination domain, record each
outcome as soon as it is known.

Guarantees (docs/delivery.md):
- A recipient is claimed with SELECT ... FOR UPDATE SKIP LOCKED and a lease (status=sending,
  lease_until=<our lease>); only the lease holder can record its outcome (recording.py).
  A recorded delivery is never redone.
- Each outcome is committed right after the server's reply, before the next message is sent,
  so a crash (SIGKILL) re-sends only the recipient whose reply was not yet recorded.
- No network I/O inside a database transaction: claims and records are short transactions or
  single statements; DNS and SMTP happen between them.
- The retry schedule lives in the database (next_attempt_at); the sweeper re-enqueues due rows.
"""
import logging
import random
import time
from collections import Counter, deque
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from django.conf import settings
from django.db import connection as db_connection, connections, transaction
from django.db.models import Case, Q, Value, When
from django.utils import timezone

from dispatch_site import crypto
from dispatch_site.hot_reads import Columns
from sending.models import DeliveryAttempt, Message, Recipient

from . import politeness, routing
from .pool import NoSlot, pool
from .recording import Recorder
from .smtp_client import SMTPConnectionError, SMTPGreetingRefused, TLSRequiredError

log = logging.getLogger(__name__)
Status = Recipient.Status
Outcome = DeliveryAttempt.Outcome

_BODY_BUDGET = 16 * 1024 * 1024  # encrypted bodies fetched per query
_BROKEN_CONNECTIONS_PER_TARGET = 2
_HELD_TENANT_RECHECK = 300  # seconds between looks at a blocked tenant's queued mail


@dataclass
class Result:
    outcome: str
    code: int | None = None
    enhanced: str = ""
    text: str = ""
    mx_host: str = ""
    remote_ip: str = ""

    @classmethod
    def from_reply(cls, reply, *, mx_host="", remote_ip=""):
        if reply.code < 400:
            outcome = Outcome.DELIVERED
        elif reply.code < 500:
            outcome = Outcome.DEFERRED
        else:
            outcome = Outcome.BOUNCED
        return cls(outcome, reply.code, reply.enhanced, reply.text, mx_host, remote_ip)

    @property
    def reply_text(self):
        return " ".join(str(part) for part in (self.code, self.enhanced, self.text) if part)


class _TargetFailed(Exception):
    """This target cannot take the pending recipients. With `slow_down` the host asked us to
    back off mid-batch: the recipients not yet tried wait instead of failing an attempt."""

    def __init__(self, result, *, slow_down=False):
        super().__init__(result.text)
        self.result = result
        self.slow_down = slow_down


class _Postpone(Exception):
    """Not our turn (connection cap reached, host backing off): try later, no attempt counted."""

    def __init__(self, seconds, reason):
        super().__init__(reason)
        self.seconds = seconds


def new_lease():
    # Random microseconds make two claims' leases distinct even within one clock tick.
    return timezone.now() + timedelta(seconds=settings.DISPATCH_DELIVERY_LEASE, microseconds=random.randrange(1_000_000))


# --- claiming ----------------------------------------------------------------------------------
def _claimable(now):
    """Due and waiting (its previous outcome fully recorded), or leased by a worker whose lease
    ran out (it died)."""
    waiting = Q(status__in=[Status.QUEUED, Status.DEFERRED], next_attempt_at__lte=now, effects_pending=False)
    return waiting | Q(status=Status.SENDING, lease_until__lt=now)


def claim(recipient_ids):
    """Claim the due recipients among `recipient_ids` plus more due recipients of the same
    domains, up to the batch size each: under load one task (one connection) carries a batch,
    and the tasks of the rows it took find nothing left and return at once.
    Returns (lease, [Recipient])."""
    lease, now = new_lease(), timezone.now()
    batch = settings.DISPATCH_DELIVERY_BATCH_SIZE
    with transaction.atomic():
        rows = list(
            Recipient.objects.select_for_update(skip_locked=True)
            .filter(_claimable(now), id__in=list(recipient_ids))
            .values_list("id", "domain")
        )
        ids = [recipient_id for recipient_id, _ in rows]
        per_domain = Counter(domain for _, domain in rows)
        for domain, count in per_domain.items():
            if count < batch:
                more = (
                    Recipient.objects.select_for_update(skip_locked=True)
                    .filter(domain=domain, status__in=[Status.QUEUED, Status.DEFERRED], next_attempt_at__lte=now, effects_pending=False)
                    .exclude(id__in=ids)
                    .values_list("id", flat=True)[: batch - count]
                )
                ids.extend(more)
        if ids:
            Recipient.objects.filter(id__in=ids).update(status=Status.SENDING, lease_until=lease)
    if not ids:
        return lease, []
    return lease, load_recipients(ids)


def claim_due(limit=None):
    """Claim up to `limit` (default: the batch size) due recipients, oldest due first, whatever
    their message or domain (deliver_claimed groups them per domain: one connection each).
    Returns (lease, [Recipient]) as load_recipients gives them.

    One statement: pick the rows (FOR UPDATE SKIP LOCKED), lease them and return them with their
    message (body not loaded) and tenant. It is what the ORM version did in six round trips
    (BEGIN, SELECT, UPDATE, COMMIT, and two SELECTs to load), and a drain runs it for every
    batch: with /send's small batches its statements were a third of the worker's queries."""
    lease, now = new_lease(), timezone.now()
    limit = limit or settings.DISPATCH_DELIVERY_BATCH_SIZE
    if db_connection.vendor != "postgresql":
        return _claim_due_orm(lease, now, limit)
    sql, parts = _claim_due_sql(db_connection.alias)
    lease_value = Recipient._meta.get_field("lease_until").get_db_prep_value(lease, db_connection)
    now_value = Recipient._meta.get_field("next_attempt_at").get_db_prep_value(now, db_connection)
    with db_connection.cursor() as cursor:
        cursor.execute(sql, [Status.QUEUED, Status.DEFERRED, now_value, Status.SENDING, now_value, limit,
                             Status.SENDING, lease_value])
        rows = cursor.fetchall()
    # One object per message and per tenant, as load_recipients gives them; a message's columns
    # repeat on each of its recipients' rows but are turned into an object once. The relations
    # are cached as select_related caches them: the keys match by construction, so the checks
    # of assigning through the descriptors (type, database router) have nothing to find.
    recipient_cols, message_cols, tenant_cols = parts
    a, b = len(recipient_cols), len(recipient_cols) + len(message_cols)
    messages, tenants, recipients = {}, {}, []
    for row in rows:
        recipient = recipient_cols.build(row[:a], db_connection)
        message = messages.get(recipient.message_id)
        if message is None:
            message = messages[recipient.message_id] = message_cols.build(row[a:b], db_connection)
            if message.tenant_id not in tenants:
                tenants[message.tenant_id] = tenant_cols.build(row[b:], db_connection)
            _MESSAGE_TENANT.set_cached_value(message, tenants[message.tenant_id])
        _RECIPIENT_MESSAGE.set_cached_value(recipient, message)
        _RECIPIENT_TENANT.set_cached_value(recipient, tenants[message.tenant_id])
        recipients.append(recipient)
    return lease, recipients


_RECIPIENT_MESSAGE = Recipient._meta.get_field("message")
_RECIPIENT_TENANT = Recipient._meta.get_field("tenant")
_MESSAGE_TENANT = Message._meta.get_field("tenant")


@lru_cache(maxsize=None)
def _claim_due_sql(using):
    from tenants.models import Tenant

    connection = connections[using]
    quote = connection.ops.quote_name
    recipient_cols = Columns(Recipient, "r", exclude=("captured_message",))
    message_cols = Columns(Message, "m", exclude=("body",))
    tenant_cols = Columns(Tenant, "t")
    table = quote(Recipient._meta.db_table)
    # _claimable(now), in SQL (keep the two in step): due and waiting, or leased by a worker whose
    # lease ran out. tests/delivery/test_claim_due.py checks each case of it.
    sql = (
        f"WITH picked AS (SELECT id FROM {table} "
        "WHERE (status IN (%s, %s) AND next_attempt_at <= %s AND NOT effects_pending) "
        "OR (status = %s AND lease_until < %s) "
        "ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED) "
        f"UPDATE {table} r SET status = %s, lease_until = %s "
        f"FROM picked, {quote(Message._meta.db_table)} m, {quote(Tenant._meta.db_table)} t "
        "WHERE r.id = picked.id AND m.id = r.message_id AND t.id = m.tenant_id "
        f"RETURNING {recipient_cols.sql(connection)}, {message_cols.sql(connection)}, {tenant_cols.sql(connection)}"
    )
    return sql, (recipient_cols, message_cols, tenant_cols)


def _claim_due_orm(lease, now, limit):
    """claim_due on databases other than PostgreSQL (the SQLite development default)."""
    with transaction.atomic():
        ids = list(
            Recipient.objects.select_for_update(skip_locked=True)
            .filter(_claimable(now))
            .order_by("next_attempt_at")
            .values_list("id", flat=True)[:limit]
        )
        if ids:
            Recipient.objects.filter(id__in=ids).update(status=Status.SENDING, lease_until=lease)
    if not ids:
        return lease, []
    return lease, load_recipients(ids)


def load_recipients(ids):
    """Recipients with their message (body not loaded) and tenant, one object per message."""
    from tenants.models import Tenant

    recipients = list(Recipient.objects.filter(id__in=ids).select_related("message").defer("message__body", "captured_message"))
    messages = {}
    for recipient in recipients:
        recipient.message = messages.setdefault(recipient.message_id, recipient.message)
    tenants = Tenant.objects.in_bulk({m.tenant_id for m in messages.values()})
    for message in messages.values():
        message.tenant = tenants[message.tenant_id]
    for recipient in recipients:
        recipient.tenant = tenants[recipient.tenant_id]
    return recipients


def give_back(recipients, lease, *, seconds):
    """Release claimed rows without counting an attempt; they are due again in `seconds`."""
    Recipient.objects.filter(id__in=[r.id for r in recipients], status=Status.SENDING, lease_until=lease).update(
        status=Case(When(attempts=0, then=Value(Status.QUEUED)), default=Value(Status.DEFERRED)),
        lease_until=None,
        next_attempt_at=timezone.now() + timedelta(seconds=seconds),
    )


# --- entry point ---------------------------------------------------------------------------------
def deliver(recipient_ids):
    """Claim and deliver. Returns the number of recipients this call handled."""
    lease, recipients = claim(recipient_ids)
    return deliver_claimed(lease, recipients)


def deliver_claimed(lease, recipients, context=None):
    """Deliver recipients claimed under `lease`. Returns how many. A `context` (new_context())
    may be shared by successive calls of one task (signing domains are then looked up once)."""
    from tenants.limits import delivery_allowed

    if not recipients:
        return 0
    held = [r for r in recipients if not delivery_allowed(r.tenant)]
    if held:
        # A blocked tenant's mail stays queued (not failed) until the tenant is unblocked.
        give_back(held, lease, seconds=_HELD_TENANT_RECHECK)
    held_ids = {r.id for r in held}
    context = context or _Context()
    by_domain = {}
    for recipient in recipients:
        if recipient.id not in held_ids:
            by_domain.setdefault(recipient.domain, []).append(recipient)
    try:
        for domain, batch in by_domain.items():
            DomainBatch(domain, batch, lease, context).run()
    finally:
        pool.reap()
    return len(recipients)


def new_context():
    return _Context()


class _Context:
    """Per-call caches: decrypted bodies and signing domains."""

    def __init__(self):
        self._bodies = {}
        self._domains = {}

    def body(self, message, upcoming):
        """The prepared message bytes (None if erased). Fetches the bodies of `upcoming`
        messages too, up to a byte budget, so a batch of one-recipient messages costs one query."""
        if message.id not in self._bodies:
            self._bodies.clear()  # keep one round's bodies in memory, not the whole batch's
            wanted, size = {}, 0  # a dict: ordered, and a cheap membership test
            for other in upcoming:
                if other.id in wanted:
                    continue
                if wanted and size + other.body_size_bytes > _BODY_BUDGET:
                    break
                wanted[other.id] = None
                size += other.body_size_bytes
            if message.id not in wanted:
                wanted = {message.id: None, **wanted}
            for message_id, blob in Message.objects.filter(id__in=list(wanted)).values_list("id", "body"):
                self._bodies[message_id] = blob
        blob = self._bodies.get(message.id)
        if blob is None:
            return None
        return crypto.decrypt(blob, message.body_associated_data)

    def signing_domain(self, message):
        """The tenant's Domain row for the From domain (or its closest parent), whatever its
        verification state now: the message was accepted, so it is signed with that key."""
        from domains.models import Domain

        from_domain = message.from_address.rpartition("@")[2].lower()
        key = (message.tenant_id, from_domain)
        if key not in self._domains:
            labels = from_domain.split(".")
            names = [".".join(labels[i:]) for i in range(len(labels) - 1)]
            found = {d.name: d for d in Domain.objects.filter(tenant_id=message.tenant_id, name__in=names)}
            self._domains[key] = next((found[name] for name in names if name in found), None)
        return self._domains[key]


class DomainBatch:
    """The claimed recipients of one destination domain."""

    def __init__(self, domain, recipients, lease, context):
        self.domain = domain
        self.pending = deque(sorted(recipients, key=lambda r: r.id))  # a message's recipients are adjacent
        self.lease = lease
        self.context = context
        self.recorder = Recorder()

    def run(self):
        try:
            if settings.DISPATCH_DELIVERY_MODE == "capture":
                self._capture_all()
            else:
                self._deliver_all()
        except _Postpone as postpone:
            self._postpone(postpone.seconds, str(postpone))
        finally:
            self.recorder.flush()

    # --- preparing one copy ----------------------------------------------------------------
    def _prepare(self, recipient):
        """(envelope sender, bytes to send) or a failed Result."""
        from sending.bounces.verp import encode as verp_encode
        from sending.mime import finalize_for_recipient

        message = recipient.message
        try:
            # A generator: the upcoming messages are looked at only when a fetch is due.
            body = self.context.body(message, (r.message for r in self.pending))
        except crypto.DecryptionError as exc:
            return Result(Outcome.FAILED, None, "5.3.0", f"stored message cannot be decrypted: {exc}")
        if body is None:
            return Result(Outcome.FAILED, None, "5.3.0", "the message body was erased before delivery")
        domain = self.context.signing_domain(message)
        try:
            data = finalize_for_recipient(body, message=message, recipient=recipient, domain=domain)
        except Exception as exc:  # noqa: BLE001 - a broken stored message must not stop the batch
            log.exception("finalizing message %s for recipient %s failed", message.pk, recipient.pk)
            return Result(Outcome.FAILED, None, "5.3.0", f"the message could not be prepared: {exc}")
        return_path_domain = (
            domain.return_path_domain
            if domain is not None
            else f"{settings.DISPATCH_RETURN_PATH_SUBDOMAIN}.{message.from_address.rpartition('@')[2].lower()}"
        )
        return verp_encode(recipient.id, return_path_domain), data

    def _next_copy(self):
        """(recipient, started, envelope sender, bytes) for the next pending recipient, or None
        when none is left. A copy that cannot be prepared is recorded as failed on the way."""
        while True:
            self._ensure_lease()
            if not self.pending:
                return None
            recipient, started = self.pending[0], time.monotonic()
            prepared = self._prepare(recipient)
            if not isinstance(prepared, Result):
                return (recipient, started, *prepared)
            self._record(recipient, prepared, started)

    # --- capture mode -------------------------------------------------------------------------
    def _capture_all(self):
        while (copy := self._next_copy()) is not None:
            recipient, started, _, data = copy
            captured = crypto.encrypt(data, recipient.captured_associated_data)
            result = Result(Outcome.DELIVERED, 250, "2.0.0", "captured (DISPATCH_DELIVERY_MODE=capture); not sent", "capture")
            self._record(recipient, result, started, captured_message=captured)

    # --- MX delivery ----------------------------------------------------------------------------
    def _deliver_all(self):
        try:
            targets = routing.route(self.domain)
        except routing.RouteError as error:
            outcome = Outcome.BOUNCED if error.permanent else Outcome.DEFERRED
            self._record_rest(Result(outcome, error.code, error.enhanced, error.text))
            return

        last_failure, wait = None, None
        for target in targets:
            if not self.pending:
                return
            remaining = politeness.backing_off(target.host)
            if remaining:
                wait = min(wait or remaining, remaining)
                continue
            try:
                self._deliver_via(target)
            except NoSlot:
                wait = min(wait or 5, 5)
            except _TargetFailed as failure:
                if failure.slow_down:
                    wait = min(wait or settings.DISPATCH_OUTBOUND_HOST_BACKOFF, settings.DISPATCH_OUTBOUND_HOST_BACKOFF)
                else:
                    last_failure = failure.result
        if not self.pending:
            return
        if last_failure is None and wait is not None:
            raise _Postpone(wait + random.uniform(0, 5), "every mail server of the domain is busy or backing off")
        self._record_rest(last_failure or Result(Outcome.DEFERRED, None, "4.4.1", "no mail server could be reached"))

    def _deliver_via(self, target):
        require_tls = self.domain in settings.DISPATCH_TLS_REQUIRED_DOMAINS
        broken = 0
        while self.pending:
            connection = self._connect(target, require_tls)
            try:
                state = self._transactions(connection, target)
            finally:
                pool.release(connection)
            if state == "broken":
                broken += 1
                if broken >= _BROKEN_CONNECTIONS_PER_TARGET:
                    raise _TargetFailed(Result(Outcome.DEFERRED, None, "4.4.2", f"connection to {target.host} broke repeatedly"))

    def _connect(self, target, require_tls):
        try:
            return pool.acquire(target, require_tls=require_tls)
        except SMTPGreetingRefused as refused:
            if _is_slow_down(refused.reply):
                politeness.back_off(target.host)
            result = Result(Outcome.DEFERRED, refused.reply.code, refused.reply.enhanced, refused.reply.text, target.host, target.address)
            raise _TargetFailed(result) from None
        except TLSRequiredError as exc:
            raise _TargetFailed(Result(Outcome.DEFERRED, None, "4.7.10", str(exc), target.host, target.address)) from None
        except SMTPConnectionError as exc:
            raise _TargetFailed(Result(Outcome.DEFERRED, None, "4.4.1", str(exc), target.host, target.address)) from None

    def _transactions(self, connection, target):
        """Send pending recipients over `connection` until done. Returns "done", "full"
        (per-connection message cap), "stale" (a pooled connection the server had closed) or
        "broken"; raises _TargetFailed when the host asks us to slow down."""
        used = 0
        while self.pending:
            if connection.transactions >= settings.DISPATCH_OUTBOUND_MAX_MESSAGES_PER_CONNECTION:
                return "full"
            copy = self._next_copy()
            if copy is None:
                break
            recipient, started, mail_from, data = copy
            try:
                sent = connection.send(mail_from, [recipient.email], data)
            except SMTPConnectionError as exc:
                if connection.reused and used == 0 and exc.replies_received == 0:
                    return "stale"  # nothing of this transaction reached the server: not an attempt
                self._record(recipient, Result(Outcome.DEFERRED, None, "4.4.2", str(exc), target.host, connection.remote_ip), started)
                return "broken"
            used += 1
            pool.touch(connection)
            reply = sent.recipients[recipient.email]
            self._record(recipient, Result.from_reply(reply, mx_host=target.host, remote_ip=connection.remote_ip), started)
            if _is_slow_down(reply):
                politeness.back_off(target.host)
                connection.quit()  # not pooled: nobody should use this host for a while
                raise _TargetFailed(Result.from_reply(reply, mx_host=target.host, remote_ip=connection.remote_ip), slow_down=True)
        return "done"

    # --- lease -----------------------------------------------------------------------------------
    def _ensure_lease(self):
        """Renew the lease of the rows still pending once a third of it is used, and drop rows
        whose lease we lost (another worker owns them now)."""
        left = (self.lease - timezone.now()).total_seconds()
        if left > settings.DISPATCH_DELIVERY_LEASE * 2 / 3:
            return
        lease = new_lease()
        ids = [r.id for r in self.pending]
        Recipient.objects.filter(id__in=ids, status=Status.SENDING, lease_until=self.lease).update(lease_until=lease)
        kept = set(Recipient.objects.filter(id__in=ids, status=Status.SENDING, lease_until=lease).values_list("id", flat=True))
        if len(kept) < len(ids):
            log.warning("lost the lease of %d recipient(s) of %s", len(ids) - len(kept), self.domain)
        self.pending = deque(r for r in self.pending if r.id in kept)
        self.lease = lease

    def _postpone(self, seconds, reason):
        give_back(self.pending, self.lease, seconds=seconds)
        log.info("postponed %d recipient(s) of %s by %.0f s: %s", len(self.pending), self.domain, seconds, reason)
        self.pending.clear()

    # --- recording ------------------------------------------------------------------------------
    def _record(self, recipient, result, started, **extra):
        self.pending.popleft()
        return self.recorder.record(recipient, result, started, lease=self.lease, **extra)

    def _record_rest(self, result):
        while self.pending:
            self._record(self.pending[0], result, time.monotonic())


def _is_slow_down(reply):
    return reply.code == 421 or (reply.transient and reply.enhanced.startswith("4.7."))
