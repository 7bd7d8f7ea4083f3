"""Compliance guard: protects the platform's sending reputation from one tenant's bad lists.

A beat task (tenants.tasks.compliance_sweep, every 5 minutes) looks at every tenant that has
accepted at least DISPATCH_COMPLIANCE_MIN_VOLUME recipients this month (UTC) and computes, from
the usage counters (no scans over the message log):

    bounce rate    = hard bounces / accepted recipients   (percent)
    complaint rate = complaints   / accepted recipients   (percent)

At or above a *_WARN threshold the tenant is flagged for operators (Tenant.compliance_flagged_at
and compliance_reason; admin filter "compliance flagged"). At or above a *_SUSPEND threshold an
active tenant is also suspended (tenants.services.tenant_set_status, reason "compliance: ..."),
unless an operator reviewed it this month (admin action "Compliance reviewed"). Once the rates are
back under the warning thresholds the flag clears by itself; a suspension is only lifted by an
operator.
"""
import logging
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from . import services
from .limits import current_period
from .models import Tenant, UsageCounter

log = logging.getLogger(__name__)

OK, WARN, SUSPEND = "ok", "warn", "suspend"
REASON_PREFIX = "compliance: "


@dataclass(frozen=True)
class Verdict:
    level: str | None  # None: too little volume this month to judge
    bounce_rate_pct: float = 0.0
    complaint_rate_pct: float = 0.0
    reason: str = ""


def _pct(part, whole):
    return round(100.0 * part / whole, 3) if whole else 0.0


def compliance_evaluate(counter: UsageCounter | None) -> Verdict:
    """The verdict for one month's counters (pure: reads nothing else)."""
    sent = counter.emails_sent if counter else 0
    if sent < settings.DISPATCH_COMPLIANCE_MIN_VOLUME:
        return Verdict(level=None)
    bounce = _pct(counter.hard_bounce, sent)
    complaint = _pct(counter.complaint, sent)
    checks = [
        ("bounce rate", bounce, settings.DISPATCH_COMPLIANCE_BOUNCE_WARN, settings.DISPATCH_COMPLIANCE_BOUNCE_SUSPEND),
        ("complaint rate", complaint, settings.DISPATCH_COMPLIANCE_COMPLAINT_WARN, settings.DISPATCH_COMPLIANCE_COMPLAINT_SUSPEND),
    ]
    level, reasons = OK, []
    for name, rate, warn, suspend in checks:
        if rate >= suspend:
            level = SUSPEND
            reasons.append(f"{name} {rate:g}% >= {suspend:g}% (suspension threshold)")
        elif rate >= warn:
            level = SUSPEND if level == SUSPEND else WARN
            reasons.append(f"{name} {rate:g}% >= {warn:g}% (warning threshold)")
    reason = "; ".join(reasons) + f" over {sent} recipients this month" if reasons else ""
    return Verdict(level=level, bounce_rate_pct=bounce, complaint_rate_pct=complaint, reason=reason)


def compliance_check(*, tenant, counter=None, now=None) -> Verdict:
    """Evaluate `tenant`'s current month and apply the verdict (flag, unflag, suspend)."""
    now = now or timezone.now()
    period = current_period(now)
    if counter is None:
        counter = UsageCounter.objects.filter(tenant=tenant, period=period).first()
    verdict = compliance_evaluate(counter)
    if verdict.level is None:
        return verdict
    if verdict.level == OK:
        if tenant.compliance_flagged_at is not None:
            _set_flag(tenant, None, "")
            log.info("compliance: tenant %s back under the warning thresholds; flag cleared", tenant.pk)
        return verdict
    if tenant.compliance_flagged_at is None:
        _set_flag(tenant, now, verdict.reason)
        log.warning("compliance: tenant %s flagged: %s", tenant.pk, verdict.reason)
    elif tenant.compliance_reason != verdict.reason[:300]:
        _set_flag(tenant, tenant.compliance_flagged_at, verdict.reason)
    reviewed = tenant.compliance_reviewed_at is not None and current_period(tenant.compliance_reviewed_at) == period
    if verdict.level == SUSPEND and tenant.status == Tenant.Status.ACTIVE and not reviewed:
        services.tenant_set_status(tenant=tenant, status=Tenant.Status.SUSPENDED, reason=(REASON_PREFIX + verdict.reason)[:300])
        log.warning("compliance: tenant %s suspended: %s", tenant.pk, verdict.reason)
    return verdict


def compliance_sweep(*, now=None) -> dict:
    """Check every tenant with enough volume this month. Returns counts per verdict level."""
    now = now or timezone.now()
    counters = UsageCounter.objects.filter(
        period=current_period(now), emails_sent__gte=settings.DISPATCH_COMPLIANCE_MIN_VOLUME
    ).select_related("tenant", "tenant__plan")
    summary = {OK: 0, WARN: 0, SUSPEND: 0}
    for counter in counters.iterator(chunk_size=500):
        verdict = compliance_check(tenant=counter.tenant, counter=counter, now=now)
        summary[verdict.level] += 1
    return summary


def compliance_mark_reviewed(*, tenant, now=None):
    """Operator action: clear the flag, lift a compliance suspension, and exempt the tenant from
    automatic suspension for the rest of this month (it is still flagged again if rates stay high)."""
    now = now or timezone.now()
    tenant.compliance_reviewed_at = now
    tenant.compliance_flagged_at = None
    tenant.compliance_reason = ""
    tenant.save(update_fields=["compliance_reviewed_at", "compliance_flagged_at", "compliance_reason", "updated_at"])
    if tenant.status == Tenant.Status.SUSPENDED and tenant.status_reason.startswith(REASON_PREFIX):
        services.tenant_set_status(tenant=tenant, status=Tenant.Status.ACTIVE, reason="compliance reviewed by an operator")
    return tenant


def _set_flag(tenant, flagged_at, reason):
    tenant.compliance_flagged_at = flagged_at
    tenant.compliance_reason = reason[:300]
    tenant.save(update_fields=["compliance_flagged_at", "compliance_reason", "updated_at"])
