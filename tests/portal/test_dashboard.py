import datetime

import pytest
from django.utils import timezone

from portal.charts import daily_counts
from sending.models import Message, Recipient
from tenants import services as tenant_services
from tenants.models import Tenant, UsageCounter
from tenants.selectors import period_start

from .conftest import make_verified_domain

pytestmark = pytest.mark.django_db


def test_daily_counts_group_recipients_by_submission_day_in_one_query(tenant, other_tenant, send,
                                                                      django_assert_num_queries):
    make_verified_domain(tenant)
    first = send(tenant, to=["a@example.org", "b@example.org", "c@example.org"]).message
    second = send(tenant, to=["d@example.org"]).message
    period = period_start()
    day_two = datetime.datetime.combine(period + datetime.timedelta(days=1), datetime.time(23, 59), tzinfo=datetime.UTC)
    Message.objects.filter(pk=second.pk).update(queued_at=day_two)
    Recipient.objects.filter(message=first, email="a@example.org").update(status="delivered")
    Recipient.objects.filter(message=first, email="b@example.org").update(status="bounced")
    last_month = datetime.datetime.combine(period, datetime.time.min, tzinfo=datetime.UTC) - datetime.timedelta(hours=1)
    old = send(tenant, to=["old@example.org"]).message
    Message.objects.filter(pk=old.pk).update(queued_at=last_month)
    make_verified_domain(other_tenant, "other.example")
    send(other_tenant, from_="x@other.example", to=["e@example.org"])

    with django_assert_num_queries(1):
        days = daily_counts(tenant, period)
    today = timezone.now().date()
    by_date = {d.date: (d.sent, d.delivered, d.bounced) for d in days}
    assert len(days) >= 28 and days[0].date == period
    expected_today = (3, 1, 1) if today != period + datetime.timedelta(days=1) else (4, 1, 1)
    assert by_date[today] == expected_today
    assert by_date[period + datetime.timedelta(days=1)][0] >= 1
    assert sum(d.sent for d in days) == 4


def test_dashboard_shows_usage_rates_chart_and_queue(browser, page, tenant, send):
    make_verified_domain(tenant)
    send(tenant, to=["a@example.org", "b@example.org"])
    UsageCounter.objects.filter(tenant=tenant).update(delivered=1, hard_bounce=1)
    html = browser.get(page()).content.decode()
    assert f"<strong>2</strong> of {tenant.plan.monthly_quota} emails used" in html
    assert "50.0%" in html  # delivery rate and hard-bounce rate
    assert '<svg viewBox="0 0 720 260" role="img"' in html and "<rect" in html
    assert "2 sent, 0 delivered, 0 bounced" in html  # the chart's description (Recipient rows)
    assert '<div class="value">2</div><div class="label">waiting</div>' in html  # queue summary


def test_dashboard_banners_for_suspended_and_flagged_tenants(browser, page, tenant):
    assert b'class="banner' not in browser.get(page()).content
    tenant_services.tenant_set_status(tenant=tenant, status=Tenant.Status.SUSPENDED, reason="Unpaid invoice.")
    Tenant.objects.filter(pk=tenant.pk).update(compliance_flagged_at=timezone.now(),
                                               compliance_reason="Hard bounce rate 6% is above 5%.")
    html = browser.get(page()).content.decode()
    assert "This tenant is suspended" in html and "Unpaid invoice." in html
    assert "Compliance warning" in html and "Hard bounce rate 6%" in html
