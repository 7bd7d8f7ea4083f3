"""Compliance guard: flag at the warning thresholds, suspend at the second thresholds."""
from datetime import timedelta

import pytest
from django.utils import timezone

from tenants import compliance, limits
from tenants.models import Tenant, UsageCounter
from tenants.tasks import compliance_sweep


@pytest.fixture(autouse=True)
def _thresholds(settings):
    settings.DISPATCH_COMPLIANCE_MIN_VOLUME = 200
    settings.DISPATCH_COMPLIANCE_BOUNCE_WARN = 5.0
    settings.DISPATCH_COMPLIANCE_COMPLAINT_WARN = 0.1
    settings.DISPATCH_COMPLIANCE_BOUNCE_SUSPEND = 10.0
    settings.DISPATCH_COMPLIANCE_COMPLAINT_SUSPEND = 0.5


def month(tenant, **counts):
    UsageCounter.objects.update_or_create(tenant=tenant, period=limits.current_period(), defaults=counts)


def fresh(tenant):
    tenant.refresh_from_db()
    return tenant


def test_below_the_minimum_volume_nothing_happens(tenant):
    month(tenant, emails_sent=199, hard_bounce=100)
    compliance_sweep()
    tenant = fresh(tenant)
    assert tenant.compliance_flagged_at is None and tenant.status == Tenant.Status.ACTIVE


def test_healthy_rates_are_not_flagged(tenant):
    month(tenant, emails_sent=1000, hard_bounce=49, complaint=0)
    assert compliance_sweep() == {"ok": 1, "warn": 0, "suspend": 0}
    assert fresh(tenant).compliance_flagged_at is None


def test_a_bounce_rate_at_the_warning_threshold_flags_the_tenant(tenant):
    month(tenant, emails_sent=1000, hard_bounce=50, soft_bounce=300)  # soft bounces do not count
    compliance_sweep()
    tenant = fresh(tenant)
    assert tenant.compliance_flagged_at is not None
    assert tenant.compliance_reason == "bounce rate 5% >= 5% (warning threshold) over 1000 recipients this month"
    assert tenant.status == Tenant.Status.ACTIVE


def test_a_complaint_rate_at_the_warning_threshold_flags_the_tenant(tenant):
    month(tenant, emails_sent=2000, complaint=2)
    compliance_sweep()
    assert fresh(tenant).compliance_reason.startswith("complaint rate 0.1% >= 0.1% (warning threshold)")


@pytest.mark.parametrize("counts, reason", [
    ({"hard_bounce": 100}, "bounce rate 10% >= 10% (suspension threshold)"),
    ({"complaint": 5}, "complaint rate 0.5% >= 0.5% (suspension threshold)"),
])
def test_past_the_second_threshold_the_tenant_is_suspended(tenant, counts, reason):
    month(tenant, emails_sent=1000, **counts)
    assert compliance_sweep()["suspend"] == 1
    tenant = fresh(tenant)
    assert tenant.status == Tenant.Status.SUSPENDED
    assert tenant.status_reason.startswith("compliance: " + reason)
    assert tenant.compliance_flagged_at is not None


def test_a_suspended_tenant_cannot_send(api, tenant, verified_domain):
    month(tenant, emails_sent=1000, hard_bounce=200)
    compliance_sweep()
    response = api.post(f"/api/v1/dispatch/tenants/{tenant.id}/send",
                        {"from": "s@example.com", "to": ["a@example.org"], "subject": "x", "text_body": "x"}, format="json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "TENANT_NOT_ACTIVE"


def test_the_flag_clears_when_rates_recover_but_a_suspension_stays(tenant):
    month(tenant, emails_sent=1000, hard_bounce=150)
    compliance_sweep()
    month(tenant, emails_sent=10_000, hard_bounce=150)  # 1.5 %
    compliance_sweep()
    tenant = fresh(tenant)
    assert tenant.compliance_flagged_at is None and tenant.compliance_reason == ""
    assert tenant.status == Tenant.Status.SUSPENDED


def test_a_blocked_tenant_stays_blocked(tenant):
    from tenants.services import tenant_set_status

    tenant_set_status(tenant=tenant, status=Tenant.Status.BLOCKED, reason="operator")
    month(tenant, emails_sent=1000, hard_bounce=500)
    compliance_sweep()
    tenant = fresh(tenant)
    assert (tenant.status, tenant.status_reason) == (Tenant.Status.BLOCKED, "operator")
    assert tenant.compliance_flagged_at is not None


def test_a_reviewed_tenant_is_reactivated_and_not_suspended_again_this_month(tenant):
    month(tenant, emails_sent=1000, hard_bounce=150)
    compliance_sweep()
    compliance.compliance_mark_reviewed(tenant=fresh(tenant))
    tenant = fresh(tenant)
    assert tenant.status == Tenant.Status.ACTIVE and tenant.compliance_flagged_at is None
    compliance_sweep()
    tenant = fresh(tenant)
    assert tenant.status == Tenant.Status.ACTIVE
    assert tenant.compliance_flagged_at is not None  # still visible to operators
    next_month = timezone.now() + timedelta(days=32)
    UsageCounter.objects.create(tenant=tenant, period=limits.current_period(next_month), emails_sent=1000, hard_bounce=150)
    compliance.compliance_sweep(now=next_month)
    assert fresh(tenant).status == Tenant.Status.SUSPENDED


def test_operator_suspensions_are_not_lifted_by_a_review(tenant):
    from tenants.services import tenant_set_status

    tenant_set_status(tenant=tenant, status=Tenant.Status.SUSPENDED, reason="unpaid invoice")
    compliance.compliance_mark_reviewed(tenant=tenant)
    assert fresh(tenant).status == Tenant.Status.SUSPENDED


def test_operators_filter_flagged_tenants_in_the_admin(client, tenant, other_tenant, make_user):
    month(tenant, emails_sent=1000, complaint=2)
    compliance_sweep()
    staff = make_user()
    staff.is_staff = staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    flagged = client.get("/admin/tenants/tenant/", {"compliance_flagged": "yes"}).content.decode()
    clean = client.get("/admin/tenants/tenant/", {"compliance_flagged": "no"}).content.decode()
    assert tenant.name in flagged and other_tenant.name not in flagged
    assert other_tenant.name in clean and tenant.name not in clean


def test_the_sweep_is_scheduled():
    from dispatch_site.beat import BEAT_SCHEDULE

    assert any(e["task"] == "tenants.tasks.compliance_sweep" for e in BEAT_SCHEDULE.values())
