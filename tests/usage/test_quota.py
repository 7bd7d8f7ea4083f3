"""Monthly quota: exact under concurrency, overage, per-message checks in send-bulk."""

import pytest
from django.db import transaction

from dispatch_site.errors import QuotaExceeded
from tenants import limits
from tenants.models import UsageCounter
from tests.support.concurrency import run_concurrently
from tests.usage.conftest import message_payload


def sent_this_month(tenant):
    counter = UsageCounter.objects.filter(tenant=tenant, period=limits.current_period()).first()
    return (counter.emails_sent, counter.overage) if counter else (0, 0)


def test_it_counts_accepted_recipients(api, tenant, verified_domain, send_url, on_plan):
    on_plan(tenant, quota=10)
    payload = message_payload(to=["a@example.org", "b@example.org"], cc=["c@example.org"])
    assert api.post(send_url, payload, format="json").status_code == 200
    assert sent_this_month(tenant) == (3, 0)


def test_it_refuses_a_send_past_the_quota_with_the_spec_message(api, tenant, verified_domain, send_url, on_plan):
    on_plan(tenant, quota=3)
    assert api.post(send_url, message_payload(to=["a@example.org", "b@example.org"]), format="json").status_code == 200
    response = api.post(send_url, message_payload(to=["c@example.org", "d@example.org"]), format="json")
    assert response.status_code == 400
    assert response.json() == {"error": {
        "code": "QUOTA_EXCEEDED", "message": "Monthly quota exceeded (2/3). Enable overage or upgrade plan.",
    }}
    assert api.post(send_url, message_payload(to=["c@example.org"]), format="json").status_code == 200
    response = api.post(send_url, message_payload(to=["e@example.org"]), format="json")
    assert response.json()["error"]["message"] == "Monthly quota exceeded (3/3). Enable overage or upgrade plan."
    assert sent_this_month(tenant) == (3, 0)


def test_quota_error_maps_to_smtp_552_5_3_4():
    assert QuotaExceeded().smtp_reply == (552, "5.3.4")


def test_with_overage_enabled_the_excess_is_sent_and_counted_as_overage(api, tenant, verified_domain, send_url, usage_url, on_plan):
    on_plan(tenant, quota=2, overage=True, overage_enabled=True)
    assert api.post(send_url, message_payload(to=["a@example.org"]), format="json").status_code == 200
    assert api.post(send_url, message_payload(to=["b@example.org", "c@example.org"]), format="json").status_code == 200
    assert api.post(send_url, message_payload(to=["d@example.org"]), format="json").status_code == 200
    assert sent_this_month(tenant) == (4, 2)
    usage = api.get(usage_url).json()["data"]
    assert (usage["emails_sent"], usage["overage_enabled"], usage["stats"]["overage"]) == (4, True, 2)


def test_overage_switched_off_again_refuses_past_the_quota(api, tenant, verified_domain, send_url, on_plan):
    on_plan(tenant, quota=1, overage=True, overage_enabled=True)
    assert api.post(send_url, message_payload(), format="json").status_code == 200
    assert api.put(f"/api/v1/dispatch/tenants/{tenant.id}", {"overage_enabled": False}, format="json").status_code == 200
    response = api.post(send_url, message_payload(), format="json")
    assert response.json()["error"]["code"] == "QUOTA_EXCEEDED"


def test_overage_flag_is_ignored_when_the_plan_does_not_allow_overage(api, tenant, verified_domain, send_url, on_plan):
    on_plan(tenant, quota=1, overage=False, overage_enabled=True)  # e.g. downgraded after enabling it
    assert api.post(send_url, message_payload(), format="json").status_code == 200
    assert api.post(send_url, message_payload(), format="json").json()["error"]["code"] == "QUOTA_EXCEEDED"


def test_send_bulk_checks_the_quota_per_message(api, tenant, verified_domain, bulk_url, on_plan):
    on_plan(tenant, quota=3)
    messages = [
        message_payload(to=["a@example.org", "b@example.org"]),
        message_payload(to=["c@example.org", "d@example.org"]),  # would make 4
        message_payload(to=["e@example.org"]),  # fits: 3
    ]
    response = api.post(bulk_url, {"messages": messages}, format="json")
    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["sent"], data["failed"]) == (2, 1)
    assert [r["success"] for r in data["results"]] == [True, False, True]
    assert data["results"][1]["code"] == "QUOTA_EXCEEDED"
    assert sent_this_month(tenant) == (3, 0)


def test_a_rolled_back_submission_gives_its_reservation_back(tenant, on_plan):
    on_plan(tenant, quota=5)
    limits.reserve(tenant=tenant, count=2)
    with pytest.raises(RuntimeError), transaction.atomic():
        limits.reserve(tenant=tenant, count=3)
        raise RuntimeError("the INSERT failed after the quota check")
    assert sent_this_month(tenant) == (2, 0)
    limits.reserve(tenant=tenant, count=3)
    with pytest.raises(QuotaExceeded):
        limits.reserve(tenant=tenant, count=1)


@pytest.mark.django_db(transaction=True)
def test_concurrent_sends_at_the_quota_edge_accept_exactly_the_quota(tenant, on_plan):
    from sending.models import Message
    from sending.services import SendRequest, submit

    from tests.usage.conftest import make_verified_domain

    make_verified_domain(tenant, "example.com")
    on_plan(tenant, quota=25)
    limits.reserve(tenant=tenant, count=15)  # 10 left

    def send(index):
        try:
            return submit(tenant=tenant, request=SendRequest(
                from_="sender@example.com", to=[f"r{index}@example.org"], subject="Hi", text_body="Hi"))
        except QuotaExceeded:
            return "quota"

    outcomes = run_concurrently(30, send)
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    assert sum(1 for o in outcomes if o != "quota") == 10
    assert outcomes.count("quota") == 20
    assert Message.objects.filter(tenant=tenant).count() == 10
    assert sent_this_month(tenant) == (25, 0)


@pytest.mark.django_db(transaction=True)
def test_concurrent_reservations_of_mixed_sizes_never_overshoot(tenant, on_plan):
    on_plan(tenant, quota=100)
    sizes = [7, 3, 11, 5, 13, 2, 17, 9, 4, 6] * 3

    def reserve(index):
        try:
            with transaction.atomic():
                limits.reserve(tenant=tenant, count=sizes[index])
        except QuotaExceeded:
            return -sizes[index]
        return sizes[index]

    outcomes = run_concurrently(len(sizes), reserve)
    accepted = [o for o in outcomes if isinstance(o, int) and o > 0]
    refused = [-o for o in outcomes if isinstance(o, int) and o < 0]
    assert len(accepted) + len(refused) == len(sizes), outcomes
    assert sent_this_month(tenant) == (sum(accepted), 0)
    assert sum(accepted) <= 100
    assert 100 - sum(accepted) < min(refused)  # each refusal was right: it did not fit


@pytest.mark.django_db(transaction=True)
def test_concurrent_overage_reservations_count_overage_exactly(tenant, on_plan):
    on_plan(tenant, quota=10, overage=True, overage_enabled=True)

    def reserve(index):
        with transaction.atomic():
            limits.reserve(tenant=tenant, count=3)
        return 3

    outcomes = run_concurrently(8, reserve)
    assert outcomes == [3] * 8
    assert sent_this_month(tenant) == (24, 14)
