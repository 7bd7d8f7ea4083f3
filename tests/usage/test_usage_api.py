"""GET /dispatch/tenants/{id}/usage and the counters behind it."""
from datetime import date, datetime, timezone

import pytest

from tenants import limits
from tenants.models import UsageCounter
from tests.usage.conftest import message_payload


def set_counters(tenant, period, **counts):
    UsageCounter.objects.update_or_create(tenant=tenant, period=period, defaults=counts)


def test_usage_has_the_spec_shape(api, tenant, usage_url, on_plan):
    on_plan(tenant, quota=10_000)
    set_counters(tenant, limits.current_period(), emails_sent=4250, delivered=4100, hard_bounce=50, soft_bounce=80,
                 complaint=2, failed=3)
    response = api.get(usage_url)
    assert response.status_code == 200
    data = response.json()["data"]
    period = limits.current_period()
    assert data["period_start"] == f"{period:%Y-%m}-01T00:00:00Z"
    assert data["emails_sent"] == 4250 and data["monthly_quota"] == 10_000 and data["overage_enabled"] is False
    assert data["breakdown"] == {"total": 4250, "delivered": 4100, "hard_bounce": 50, "soft_bounce": 80, "complaint": 2}
    assert data["rates"] == {"delivery_rate_pct": 96.471, "hard_bounce_rate_pct": 1.176, "soft_bounce_rate_pct": 1.882,
                             "complaint_rate_pct": 0.047}
    assert data["stats"] == {"quota_remaining": 5750, "quota_used_pct": 42.5, "overage": 0, "failed": 3}


def test_an_empty_month_has_zero_rates(api, usage_url):
    data = api.get(usage_url).json()["data"]
    assert data["emails_sent"] == 0
    assert set(data["rates"].values()) == {0}


def test_period_selects_a_calendar_month(api, tenant, usage_url):
    set_counters(tenant, date(2025, 12, 1), emails_sent=7, delivered=6)
    data = api.get(usage_url, {"period": "2025-12"}).json()["data"]
    assert (data["period_start"], data["period_end"]) == ("2025-12-01T00:00:00Z", "2026-01-01T00:00:00Z")
    assert (data["emails_sent"], data["breakdown"]["delivered"]) == (7, 6)


@pytest.mark.parametrize("period", ["2026-13", "2026-00", "2026-1", "march", "2026-03-01", ""])
def test_a_bad_period_is_a_400_envelope(api, usage_url, period):
    response = api.get(usage_url, {"period": period})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR" and "YYYY-MM" in error["message"]
    assert error["details"] == {"period": ["expected YYYY-MM"]}


def test_a_credential_of_the_tenant_reads_its_usage(cred_api, usage_url):
    assert cred_api.get(usage_url).status_code == 200


def test_another_users_tenant_is_404(other_api, usage_url):
    response = other_api.get(usage_url)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "TENANT_NOT_FOUND"


def test_a_credential_of_another_tenant_is_403(other_cred_api, usage_url):
    response = other_cred_api.get(usage_url)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "CREDENTIAL_MISMATCH"


def test_usage_reads_one_counter_row_not_the_log(api, tenant, verified_domain, send_url, usage_url, django_assert_max_num_queries):
    for _ in range(3):
        api.post(send_url, message_payload(), format="json")
    with django_assert_max_num_queries(3):  # tenant + plan, counter row
        assert api.get(usage_url).json()["data"]["emails_sent"] == 3


def test_suppressed_recipients_are_not_counted(api, tenant, verified_domain, send_url):
    from sending.suppressions import suppression_add

    suppression_add(tenant=tenant, email="gone@example.org", reason="test", source="manual")
    payload = message_payload(to=["gone@example.org", "ok@example.org"])
    assert api.post(send_url, payload, format="json").status_code == 200
    assert UsageCounter.objects.get(tenant=tenant).emails_sent == 1


def test_usage_count_adds_to_the_month_of_the_event(tenant):
    january = datetime(2026, 1, 31, 23, 59, tzinfo=timezone.utc)
    limits.usage_count(tenant=tenant, field="delivered", when=january)
    limits.usage_count(tenant=tenant, field="delivered", n=2, when=january)
    limits.usage_count(tenant=tenant, field="complaint", when=datetime(2026, 2, 1, tzinfo=timezone.utc))
    assert UsageCounter.objects.get(tenant=tenant, period=date(2026, 1, 1)).delivered == 3
    assert UsageCounter.objects.get(tenant=tenant, period=date(2026, 2, 1)).complaint == 1
    with pytest.raises(ValueError):
        limits.usage_count(tenant=tenant, field="emails_sent")


@pytest.mark.parametrize("event, bounce_type, field", [
    ("delivered", None, "delivered"), ("bounced", "hard", "hard_bounce"), ("bounced", "soft", "soft_bounce"),
    ("bounced", None, "hard_bounce"), ("complained", None, "complaint"), ("failed", None, "failed"),
])
def test_delivery_events_increment_their_counter(tenant, event, bounce_type, field):
    limits.usage_count_event(tenant=tenant, event=event, bounce_type=bounce_type)
    counter = UsageCounter.objects.get(tenant=tenant)
    assert getattr(counter, field) == 1
    assert sum(getattr(counter, f) for f in limits.OUTCOME_FIELDS) == 1


@pytest.mark.parametrize("event", ["sent", "deferred", "suppressed", "unsubscribed"])
def test_other_events_count_nothing(tenant, event):
    limits.usage_count_event(tenant=tenant, event=event)
    assert not UsageCounter.objects.filter(tenant=tenant).exists()


def test_delivery_outcomes_emitted_by_sending_reach_the_usage_endpoint(api, tenant, verified_domain, usage_url):
    """sending.events.emit (the one path of every delivery transition) feeds the counters."""
    from sending.events import emit
    from sending.models import Recipient
    from sending.services import SendRequest, submit

    result = submit(tenant=tenant, request=SendRequest(
        from_="sender@example.com", to=["a@example.org", "b@example.org", "c@example.org", "d@example.org"],
        subject="Hi", text_body="Hi"))
    a, b, c, d = Recipient.objects.filter(message=result.message).order_by("email")
    emit("delivered", recipient=a)
    emit("bounced", recipient=b, bounce_type="hard", bounce_classification="InvalidRecipient")
    emit("bounced", recipient=c, bounce_type="soft", bounce_classification="MailboxFull")
    emit("deferred", recipient=d)
    emit("delivered", recipient=d)
    emit("complained", recipient=a)
    data = api.get(usage_url).json()["data"]
    assert data["breakdown"] == {"total": 4, "delivered": 2, "hard_bounce": 1, "soft_bounce": 1, "complaint": 1}
    assert data["rates"]["delivery_rate_pct"] == 50.0
