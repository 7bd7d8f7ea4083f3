"""Periodic re-checks: a verified domain whose ownership record disappears goes to warning,
then (after the grace period) to failed and can no longer send."""
import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from dispatch_site.celery import app as celery_app
from domains import services, tasks
from domains.models import Domain
from domains.selectors import sending_domain_for
from tests.domains.conftest import publish

pytestmark = pytest.mark.django_db


@pytest.fixture
def verified(api, tenant, add_domain, dns_server):
    data = add_domain("example.com")
    publish(dns_server, data["dns_records"])
    r = api.post(f"/api/v1/dispatch/tenants/{tenant.id}/domains/{data['domain']['id']}/verify")
    assert r.json()["data"]["verified"] is True
    return Domain.objects.get(pk=data["domain"]["id"])


def make_due(domain):
    Domain.objects.filter(pk=domain.pk).update(next_check_at=timezone.now() - timedelta(seconds=1))


def api_domain(api, tenant):
    [item] = api.get(f"/api/v1/dispatch/tenants/{tenant.id}/domains").json()["data"]
    return item


@pytest.fixture
def eager_celery(monkeypatch):
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)


def test_removed_ownership_record_moves_to_warning_then_failed(
    api, tenant, verified, dns_server, settings, eager_celery, django_capture_on_commit_callbacks, caplog
):
    settings.DISPATCH_DOMAIN_GRACE_HOURS = 72
    dns_server.remove(verified.verification_host, "TXT")
    make_due(verified)
    caplog.set_level(logging.INFO, logger="domains.services")
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.recheck_due_domains() == 1
    verified.refresh_from_db()
    assert verified.status == Domain.Status.WARNING and verified.warning_since is not None
    assert "status verified -> warning" in caplog.text
    item = api_domain(api, tenant)
    assert item["status"] == "warning" and item["verified"] is True  # still usable during the grace
    assert item["warning_since"] and item["grace_ends_at"]
    assert {r["kind"]: r["status"] for r in item["dns_records"]}["verification"] == "missing"
    assert sending_domain_for(tenant=tenant, address="hello@example.com") == verified

    # The clock passes the grace period: unusable at once (judged at read time) ...
    Domain.objects.filter(pk=verified.pk).update(warning_since=timezone.now() - timedelta(hours=73))
    assert sending_domain_for(tenant=tenant, address="hello@example.com") is None
    item = api_domain(api, tenant)
    assert item["status"] == "failed" and item["verified"] is False
    # ... and the next re-check records it.
    make_due(verified)
    caplog.clear()
    with django_capture_on_commit_callbacks(execute=True):
        tasks.recheck_due_domains()
    verified.refresh_from_db()
    assert verified.status == Domain.Status.FAILED
    assert "status warning -> failed" in caplog.text


def test_record_back_within_grace_restores_verified(api, tenant, verified, dns_server):
    dns_server.remove(verified.verification_host, "TXT")
    services.domain_recheck(domain_id=verified.pk)
    verified.refresh_from_db()
    first_verified_at = verified.verified_at
    assert verified.status == Domain.Status.WARNING
    dns_server.add(verified.verification_host, "TXT", verified.verification_value)
    services.domain_recheck(domain_id=verified.pk)
    verified.refresh_from_db()
    assert verified.status == Domain.Status.VERIFIED and verified.warning_since is None
    assert verified.verified_at == first_verified_at


def test_failed_domain_can_be_verified_again(api, tenant, verified, dns_server):
    Domain.objects.filter(pk=verified.pk).update(status=Domain.Status.FAILED)
    body = api.post(f"/api/v1/dispatch/tenants/{tenant.id}/domains/{verified.pk}/verify").json()["data"]
    assert body["verified"] is True and body["domain"]["status"] == "verified"
    assert sending_domain_for(tenant=tenant, address="a@example.com") is not None


def test_dns_errors_do_not_start_a_warning(verified, dns_server, settings):
    settings.DISPATCH_DNS_TIMEOUT = 0.3
    dns_server.fail(verified.verification_host, "servfail")
    services.domain_recheck(domain_id=verified.pk)
    verified.refresh_from_db()
    assert verified.status == Domain.Status.VERIFIED
    assert verified.record_status("verification") == "error"
    dns_server.fail(verified.verification_host, "timeout")
    services.domain_recheck(domain_id=verified.pk)
    verified.refresh_from_db()
    assert verified.status == Domain.Status.VERIFIED


def test_dns_errors_do_not_extend_a_running_grace_period(verified, dns_server):
    Domain.objects.filter(pk=verified.pk).update(
        status=Domain.Status.WARNING, warning_since=timezone.now() - timedelta(hours=80)
    )
    dns_server.fail(verified.verification_host, "servfail")
    services.domain_recheck(domain_id=verified.pk)
    verified.refresh_from_db()
    assert verified.status == Domain.Status.FAILED


def test_status_change_hook_runs_once_after_commit(verified, dns_server, monkeypatch, django_capture_on_commit_callbacks):
    calls = []
    monkeypatch.setattr(services, "domain_status_changed", lambda domain, old, new: calls.append((domain.pk, old, new)))
    dns_server.remove(verified.verification_host, "TXT")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.domain_recheck(domain_id=verified.pk)
    assert calls == []  # not before the commit
    for callback in callbacks:
        callback()
    assert calls == [(verified.pk, "verified", "warning")]
    with django_capture_on_commit_callbacks(execute=True):
        services.domain_recheck(domain_id=verified.pk)  # still missing, still in grace: no change
    assert len(calls) == 1


def test_only_due_rechecked_states_are_claimed_once(tenant, verified, add_domain):
    pending = Domain.objects.get(pk=add_domain("example.org")["domain"]["id"])
    Domain.objects.filter(pk=pending.pk).update(next_check_at=timezone.now() - timedelta(hours=1))
    assert services.domains_claim_due_rechecks() == []  # verified one not due yet (just checked)
    make_due(verified)
    assert services.domains_claim_due_rechecks() == [verified.pk]
    assert services.domains_claim_due_rechecks() == []  # claimed: next_check_at moved forward
    verified.refresh_from_db()
    assert verified.next_check_at > timezone.now() + timedelta(minutes=50)


def test_recheck_skips_domains_that_left_the_rechecked_states(verified, dns_server):
    Domain.objects.filter(pk=verified.pk).update(status=Domain.Status.PENDING)
    dns_server.clear()
    assert services.domain_recheck(domain_id=verified.pk) is None
    verified.refresh_from_db()
    assert verified.status == Domain.Status.PENDING


def test_beat_schedule_runs_the_recheck():
    from dispatch_site.beat import BEAT_SCHEDULE

    entry = BEAT_SCHEDULE["domains-recheck-due"]
    assert entry["task"] == "domains.tasks.recheck_due_domains"
    assert entry["task"] in celery_app.tasks
