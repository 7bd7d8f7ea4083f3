"""Reads for tenants, plans, credentials and usage."""
from datetime import date, datetime, timezone as dt_timezone

from django.utils import timezone

from .models import Plan, Tenant, UsageCounter


def public_plans():
    return Plan.objects.filter(is_public=True)


def tenants_of_user(user):
    return Tenant.objects.filter(owner=user).select_related("plan")


def period_start(moment=None):
    moment = moment or timezone.now()
    return date(moment.year, moment.month, 1)


def next_period(period):
    return date(period.year + (period.month == 12), period.month % 12 + 1, 1)


def _pct(part, whole):
    return round(100.0 * part / whole, 3) if whole else 0


def usage_summary(tenant, period=None):
    """The spec's usage object for one calendar month (UTC)."""
    period = period or period_start()
    counter = UsageCounter.objects.filter(tenant=tenant, period=period).first()
    counts = {
        field: getattr(counter, field, 0) if counter else 0
        for field in ("emails_sent", "overage", "delivered", "hard_bounce", "soft_bounce", "complaint", "failed")
    }
    total = counts["emails_sent"]
    start = datetime(period.year, period.month, 1, tzinfo=dt_timezone.utc)
    end_date = next_period(period)
    end = datetime(end_date.year, end_date.month, 1, tzinfo=dt_timezone.utc)
    quota = tenant.plan.monthly_quota
    return {
        "period_start": start.isoformat().replace("+00:00", "Z"),
        "period_end": end.isoformat().replace("+00:00", "Z"),
        "emails_sent": total,
        "monthly_quota": quota,
        "overage_enabled": tenant.overage_enabled,
        "stats": {
            "quota_remaining": max(quota - total, 0),
            "quota_used_pct": _pct(total, quota),
            "overage": counts["overage"],
            "failed": counts["failed"],
        },
        "breakdown": {
            "total": total,
            "delivered": counts["delivered"],
            "hard_bounce": counts["hard_bounce"],
            "soft_bounce": counts["soft_bounce"],
            "complaint": counts["complaint"],
        },
        "rates": {
            "delivery_rate_pct": _pct(counts["delivered"], total),
            "hard_bounce_rate_pct": _pct(counts["hard_bounce"], total),
            "soft_bounce_rate_pct": _pct(counts["soft_bounce"], total),
            "complaint_rate_pct": _pct(counts["complaint"], total),
        },
    }
