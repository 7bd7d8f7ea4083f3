"""HTTP and SMTP share one check and one set of counters: limits used up on one interface
refuse the other, with each interface's own reply."""
import pytest

from sending.models import Message
from tests.smtp_gateway.conftest import client_tls, smtp_starttls, start_gateway  # noqa: F401
from tests.usage.conftest import message_payload

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGE = b"From: sender@example.com\r\nTo: bob@example.net\r\nSubject: Hi\r\n\r\nHello.\r\n"


def smtp_send(client, recipients):
    client.mail("sender@example.com")
    for address in recipients:
        assert client.rcpt(address)[0] == 250
    code, text = client.data(MESSAGE)
    return code, text[:5]


def test_rate_limit_used_up_over_http_answers_451_4_7_1_over_smtp(api, tenant, credential, verified_domain, send_url,
                                                                   on_plan, smtp_starttls):
    on_plan(tenant, rate=2)
    assert api.post(send_url, message_payload(to=["a@example.org"]), format="json").status_code == 200
    client = smtp_starttls(login=credential)
    assert smtp_send(client, ["bob@example.net"])[0] == 250
    assert smtp_send(client, ["carol@example.net"]) == (451, b"4.7.1")
    assert api.post(send_url, message_payload(), format="json").status_code == 429
    assert Message.objects.count() == 2


def test_quota_used_up_over_smtp_answers_400_over_http_and_552_5_3_4_over_smtp(api, tenant, credential, verified_domain,
                                                                               send_url, on_plan, smtp_starttls):
    on_plan(tenant, quota=2)
    client = smtp_starttls(login=credential)
    assert smtp_send(client, ["bob@example.net", "carol@example.net"])[0] == 250
    response = api.post(send_url, message_payload(), format="json")
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "QUOTA_EXCEEDED", "message": "Monthly quota exceeded (2/2). Enable overage or upgrade plan."}
    assert smtp_send(client, ["dave@example.net"]) == (552, b"5.3.4")


def test_a_suspended_tenant_is_refused_on_both(api, tenant, credential, verified_domain, send_url, smtp_starttls,
                                               monkeypatch):
    """An open SMTP session re-reads its tenant's status at MAIL at most every
    smtp_gateway.handlers.CREDENTIAL_RECHECK_SECONDS (30 s); 0 here to see it at once."""
    from smtp_gateway import handlers
    from tenants.models import Tenant
    from tenants.services import tenant_set_status

    monkeypatch.setattr(handlers, "CREDENTIAL_RECHECK_SECONDS", 0)
    client = smtp_starttls(login=credential)
    tenant_set_status(tenant=tenant, status=Tenant.Status.SUSPENDED, reason="compliance: test")
    assert api.post(send_url, message_payload(), format="json").json()["error"]["code"] == "TENANT_NOT_ACTIVE"
    code, text = client.mail("sender@example.com")
    assert (code, text[:5]) == (550, b"5.7.1")
    assert not Message.objects.exists()
