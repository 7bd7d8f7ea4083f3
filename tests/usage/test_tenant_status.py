"""Suspended and blocked tenants cannot send; a blocked tenant's queued mail is held."""
import pytest

from tenants import limits
from tenants.models import Tenant, UsageCounter
from tenants.services import tenant_set_status
from tests.usage.conftest import message_payload


@pytest.mark.parametrize("status", [Tenant.Status.SUSPENDED, Tenant.Status.BLOCKED])
def test_an_inactive_tenant_gets_403_on_send(api, tenant, verified_domain, send_url, bulk_url, status):
    tenant_set_status(tenant=tenant, status=status, reason="test")
    response = api.post(send_url, message_payload(), format="json")
    assert response.status_code == 403
    assert response.json()["error"] == {"code": "TENANT_NOT_ACTIVE", "message": f"Tenant is {status}."}
    assert api.post(bulk_url, {"messages": [message_payload()]}, format="json").status_code == 403
    assert not UsageCounter.objects.filter(tenant=tenant, emails_sent__gt=0).exists()


def test_a_credential_of_a_suspended_tenant_gets_403(cred_api, tenant, verified_domain, send_url):
    tenant_set_status(tenant=tenant, status=Tenant.Status.SUSPENDED, reason="test")
    response = cred_api.post(send_url, message_payload(), format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "TENANT_NOT_ACTIVE"


def test_the_submission_service_refuses_an_inactive_tenant(tenant, verified_domain):
    """The check both HTTP and SMTP go through (sending.services)."""
    from dispatch_site.errors import TenantNotActive
    from sending.services import SendRequest, submit

    tenant_set_status(tenant=tenant, status=Tenant.Status.BLOCKED, reason="abuse")
    with pytest.raises(TenantNotActive) as refused:
        submit(tenant=tenant, request=SendRequest(from_="sender@example.com", to=["a@example.org"], subject="x", text_body="x"))
    assert refused.value.status == 403 and refused.value.smtp_reply[0] == 550


def test_a_reactivated_tenant_can_send_again(api, tenant, verified_domain, send_url):
    tenant_set_status(tenant=tenant, status=Tenant.Status.SUSPENDED, reason="test")
    tenant_set_status(tenant=tenant, status=Tenant.Status.ACTIVE)
    assert api.post(send_url, message_payload(), format="json").status_code == 200


@pytest.mark.parametrize("status, allowed", [
    (Tenant.Status.ACTIVE, True), (Tenant.Status.SUSPENDED, True), (Tenant.Status.BLOCKED, False),
])
def test_delivery_holds_only_a_blocked_tenants_mail(tenant, status, allowed):
    tenant_set_status(tenant=tenant, status=status)
    assert limits.delivery_allowed(tenant) is allowed
