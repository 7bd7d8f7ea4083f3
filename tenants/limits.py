"""Monthly quota accounting on the submission path.

`reserve` is one conditional UPDATE of the tenant's monthly counter row, so concurrent
submissions can never push a tenant past its quota (PostgreSQL re-checks the WHERE on the row
version it locks). On PostgreSQL the submission path runs the same reservation as the gate of
the one statement that stores the messages (`reservation_gate`): counted and stored commit
together. Elsewhere (SQLite), and for the messages of a batch that did not fit as a whole, it is
its own autocommitted statement just before storing (the row lock is then held only inside the
database, never across client round trips) and `release` (the inverse UPDATE) gives it back when
storing fails; a crash in between can only over-count.
`admit` is what the submission checks call per message: the per-minute rate limit (Redis,
tenants/ratelimit.py) first, then the quota; a message refused by the quota gives its rate-limit
budget back. `usage_count` records delivery outcomes on the same monthly row, and
`delivery_allowed` tells the delivery engine whether a tenant's queued mail may go out.
"""
import datetime

from django.db import connection
from django.db.models import F
from django.utils import timezone

from dispatch_site.errors import QuotaExceeded

from . import ratelimit
from .models import Tenant, UsageCounter

# Delivery outcome counters, and the event (sending.events.emit) that increments each one.
OUTCOME_FIELDS = ("delivered", "hard_bounce", "soft_bounce", "complaint", "failed")
_EVENT_FIELDS = {"delivered": "delivered", "complained": "complaint", "failed": "failed"}


def current_period(now=None) -> datetime.date:
    now = (now or timezone.now()).astimezone(datetime.timezone.utc)
    return now.date().replace(day=1)


def overage_allowed(tenant) -> bool:
    return bool(tenant.overage_enabled and tenant.plan.overage_allowed)


# One statement for both cases, in plain SQL (PostgreSQL and SQLite): it runs on every
# submission, and building the same UPDATE from F() expressions costs several times more CPU
# than executing it. SET reads the row's values from before the update; without overage the
# WHERE refuses any update that would pass the quota (and the overage term is then 0).
_COUNTER = UsageCounter._meta.db_table
# Columns read are qualified by the table: in the upsert below an unqualified one is ambiguous
# (the existing row or the one proposed).
_RESERVE_SET = f"""emails_sent = {_COUNTER}.emails_sent + %(count)s,
       overage = {_COUNTER}.overage
         + CASE WHEN {_COUNTER}.emails_sent + %(count)s > %(quota)s
                THEN {_COUNTER}.emails_sent + %(count)s - %(quota)s ELSE 0 END
         - CASE WHEN {_COUNTER}.emails_sent > %(quota)s THEN {_COUNTER}.emails_sent - %(quota)s ELSE 0 END"""
_RESERVE_ROOM = f"(%(overage)s OR {_COUNTER}.emails_sent + %(count)s <= %(quota)s)"
_RESERVE_SQL = f"""
UPDATE {_COUNTER}
   SET {_RESERVE_SET}
 WHERE tenant_id = %(tenant)s AND period = %(period)s AND {_RESERVE_ROOM}
"""
# The same reservation as the gate of the one-statement store (sending.services): an upsert,
# so the month's first submission needs no second try, with the same SET and room check on an
# existing row (unqualified columns of ON CONFLICT DO UPDATE are the existing row's, as in
# the UPDATE). It returns a row only when the recipients were counted.
_RESERVE_GATE_SQL = f"""
INSERT INTO {_COUNTER}
       (tenant_id, period, emails_sent, overage, delivered, hard_bounce, soft_bounce, complaint, failed)
SELECT %(tenant)s, %(period)s, %(count)s, GREATEST(%(count)s - %(quota)s, 0), 0, 0, 0, 0, 0
 WHERE %(overage)s OR %(count)s <= %(quota)s
    ON CONFLICT (tenant_id, period) DO UPDATE SET {_RESERVE_SET} WHERE {_RESERVE_ROOM}
RETURNING 1"""
# What the refusal message reports as used (read before the gate's change).
_USED_SQL = (f"(SELECT emails_sent FROM {_COUNTER} "
             f"WHERE tenant_id = %(tenant)s AND period = %(period)s)")


def _reserve_params(*, tenant, period, count, quota):
    field = UsageCounter._meta.get_field
    return {
        "count": count, "quota": quota, "overage": overage_allowed(tenant),
        "tenant": field("tenant").get_db_prep_value(tenant.pk, connection),
        "period": field("period").get_db_prep_value(period, connection),
    }


def _reserve_update(*, tenant, period, count, quota) -> bool:
    params = _reserve_params(tenant=tenant, period=period, count=count, quota=quota)
    with connection.cursor() as cursor:
        cursor.execute(_RESERVE_SQL, params)
        return cursor.rowcount == 1


def reserve(*, tenant, count: int, now=None) -> None:
    """Count `count` recipients against this month's quota, or raise QuotaExceeded.
    With overage enabled (and allowed by the plan) the excess is counted as overage."""
    if count <= 0:
        return
    period = current_period(now)
    quota = tenant.plan.monthly_quota
    if _reserve_update(tenant=tenant, period=period, count=count, quota=quota):
        return
    # No row yet, or no room. Create the month's row if missing (ON CONFLICT DO NOTHING: a
    # concurrent first send may be creating it; this waits for it) and try once more.
    UsageCounter.objects.bulk_create([UsageCounter(tenant=tenant, period=period)], ignore_conflicts=True)
    if _reserve_update(tenant=tenant, period=period, count=count, quota=quota):
        return
    used = UsageCounter.objects.filter(tenant=tenant, period=period).values_list("emails_sent", flat=True).first()
    raise quota_exceeded(tenant, used)


def quota_exceeded(tenant, used) -> QuotaExceeded:
    return QuotaExceeded(f"Monthly quota exceeded ({used or 0}/{tenant.plan.monthly_quota}). Enable overage or upgrade plan.")


def reservation_gate(*, tenant, count: int, now=None):
    """`reserve` as (gate, probe, params) for bulk_insert.OneStatement.execute: the gate counts
    `count` recipients (creating the month's row if needed) and returns a row only if they fit;
    the probe reads the recipients used before, for `quota_exceeded`. PostgreSQL only."""
    params = _reserve_params(tenant=tenant, period=current_period(now), count=count, quota=tenant.plan.monthly_quota)
    return _RESERVE_GATE_SQL, _USED_SQL, params


def admit(*, tenant, count: int):
    """The per-message volume checks of the submission path: the per-minute rate limit
    (RateLimited) then the monthly quota (QuotaExceeded). Returns the rate-limit window state
    (None when Redis is unavailable: the limiter fails open), which `release` takes to give
    everything back if the submission is not stored after all."""
    state = ratelimit.hit(tenant=tenant, count=count)
    try:
        reserve(tenant=tenant, count=count)
    except QuotaExceeded:
        ratelimit.refund(state, count)
        raise
    return state


_RELEASE_SQL = f"""
UPDATE {UsageCounter._meta.db_table}
   SET emails_sent = emails_sent - %(count)s,
       overage = overage
         - CASE WHEN emails_sent > %(quota)s THEN emails_sent - %(quota)s ELSE 0 END
         + CASE WHEN emails_sent - %(count)s > %(quota)s THEN emails_sent - %(count)s - %(quota)s ELSE 0 END
 WHERE tenant_id = %(tenant)s AND period = %(period)s AND emails_sent >= %(count)s
"""


def release(*, tenant, count: int, rate_state=None, now=None) -> None:
    """Give back what `admit` counted for a submission that then failed to be stored (the
    inverse of reserve, and the rate-limit refund)."""
    if count <= 0:
        return
    field = UsageCounter._meta.get_field
    params = {
        "count": count, "quota": tenant.plan.monthly_quota,
        "tenant": field("tenant").get_db_prep_value(tenant.pk, connection),
        "period": field("period").get_db_prep_value(current_period(now), connection),
    }
    with connection.cursor() as cursor:
        cursor.execute(_RELEASE_SQL, params)
    ratelimit.refund(rate_state, count)


def usage_count(*, tenant, field: str, n: int = 1, when=None) -> None:
    """Add `n` to one delivery-outcome counter of the month containing `when` (default now),
    atomically (UPDATE ... SET field = field + n; the row is created on first use)."""
    if field not in OUTCOME_FIELDS:
        raise ValueError(f"unknown usage counter {field!r}")
    if n <= 0:
        return
    period = current_period(when)
    rows = UsageCounter.objects.filter(tenant=tenant, period=period)
    if rows.update(**{field: F(field) + n}):
        return
    UsageCounter.objects.bulk_create([UsageCounter(tenant=tenant, period=period)], ignore_conflicts=True)
    rows.update(**{field: F(field) + n})


def usage_count_event(*, tenant, event: str, bounce_type=None, when=None, n: int = 1) -> None:
    """Count a delivery event (sending.events.emit calls this for every event). Outcomes are
    counted in the month the message was accepted (`when` = its queued_at), so a month's rates
    compare its outcomes with its own sends. sent/suppressed/deferred/unsubscribed count nothing
    here (accepted recipients were counted by `reserve`)."""
    if event == "bounced":
        field = "soft_bounce" if bounce_type == "soft" else "hard_bounce"
    else:
        field = _EVENT_FIELDS.get(event)
    if field:
        usage_count(tenant=tenant, field=field, n=n, when=when)


def delivery_allowed(tenant) -> bool:
    """Whether the delivery engine may send this tenant's queued mail now. A blocked tenant's
    mail is held (left queued, not failed); a suspended tenant cannot submit new mail but what
    it already queued is delivered."""
    return tenant.status != Tenant.Status.BLOCKED
