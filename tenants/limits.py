"""Monthly quota accounting on the submission path.

`reserve` runs inside the submission transaction: the counter row is updated with one
conditional UPDATE, so concurrent submissions can never push a tenant past its quota (the
row lock serialises them) and a submission that fails later rolls its reservation back.
Per-minute rate limiting (Redis) is added here by the usage issue.
"""
import datetime

from django.db.models import F, Q
from django.db.models.functions import Greatest
from django.utils import timezone

from dispatch_site.errors import QuotaExceeded

from .models import UsageCounter


def current_period(now=None) -> datetime.date:
    now = (now or timezone.now()).astimezone(datetime.timezone.utc)
    return now.date().replace(day=1)


def overage_allowed(tenant) -> bool:
    return bool(tenant.overage_enabled and tenant.plan.overage_allowed)


def reserve(*, tenant, count: int, now=None) -> None:
    """Count `count` recipients against this month's quota, or raise QuotaExceeded.
    With overage enabled (and allowed by the plan) the excess is counted as overage."""
    if count <= 0:
        return
    period = current_period(now)
    quota = tenant.plan.monthly_quota
    rows = UsageCounter.objects.filter(tenant=tenant, period=period)
    if overage_allowed(tenant):
        update = dict(
            emails_sent=F("emails_sent") + count,
            overage=F("overage") + Greatest(F("emails_sent") + count - quota, 0) - Greatest(F("emails_sent") - quota, 0),
        )
        allowed = Q()
    else:
        update = dict(emails_sent=F("emails_sent") + count)
        allowed = Q(emails_sent__lte=quota - count)
    if rows.filter(allowed).update(**update):
        return
    if not rows.exists():
        UsageCounter.objects.bulk_create([UsageCounter(tenant=tenant, period=period)], ignore_conflicts=True)
        if rows.filter(allowed).update(**update):
            return
    used = rows.values_list("emails_sent", flat=True).first() or 0
    raise QuotaExceeded(f"Monthly quota exceeded ({used}/{quota}). Enable overage or upgrade plan.")
