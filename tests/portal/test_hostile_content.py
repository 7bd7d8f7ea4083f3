"""Content that tenants and remote servers write (names, subjects, headers, bodies, SMTP
replies, DSN fields, webhook responses) is markup-escaped on every portal and admin page that
shows it: a tenant cannot run script in the portal's origin, nor in an operator's admin."""
import uuid

import pytest
from django.test import Client
from django.utils import timezone

from sending import events
from sending.models import DeliveryAttempt, InboundReport, Recipient

from .conftest import logged_in, make_verified_domain

pytestmark = pytest.mark.django_db

MARKUP = "<svg onload=alert(1)>"
HOSTILE = f'"\'>{MARKUP}'  # breaks out of an attribute, then a tag


@pytest.fixture
def hostile(user, make_tenant, send):
    """A tenant of `user` with hostile text in every field a tenant or a remote server fills."""
    from domains.models import DnsProvider
    from sending.suppressions import suppression_add
    from templates_app.services import template_create
    from tenants.services import credential_create
    from webhooks.models import Delivery, Endpoint, Event

    tenant = make_tenant(owner=user, name=HOSTILE)
    make_verified_domain(tenant)
    credential_create(tenant=tenant, label=HOSTILE)
    template = template_create(tenant=tenant, name=HOSTILE, subject=HOSTILE, html_body=HOSTILE, text_body=HOSTILE,
                               variables={"who": {"default": HOSTILE, "description": HOSTILE}})
    suppression_add(tenant=tenant, email="gone@example.org", reason=HOSTILE)
    DnsProvider.objects.create(owner=user, provider="cloudflare", label=HOSTILE, credentials_encrypted=b"x")

    message = send(tenant, from_=f'"{MARKUP}" <sender@example.com>', subject=HOSTILE, html_body=HOSTILE,
                   text_body=HOSTILE, headers={"X-Note": HOSTILE}, metadata={"note": HOSTILE}).message
    alice = message.recipients.get()
    Recipient.objects.filter(pk=alice.pk).update(status="bounced", bounce_type="hard", last_response_code=550,
                                                 last_enhanced_status="5.1.1", last_response_text=HOSTILE)
    DeliveryAttempt.objects.create(tenant=tenant, recipient=alice, mx_host=HOSTILE, response_code=550,
                                   enhanced_status="5.1.1", response_text=HOSTILE, outcome="bounced")
    events.emit("bounced", recipient=alice, message=message, tenant=tenant, bounce_type="hard",
                bounce_classification="bad-mailbox", diagnostic_code=HOSTILE)
    InboundReport.objects.create(
        tenant=tenant, message=message, recipient=alice, kind="dsn", envelope_to="b@bounces.example.com",
        envelope_from=HOSTILE, raw=b"", processed_at=timezone.now(),
        result={"error": HOSTILE, "recipients": [{"recipient": HOSTILE, "action": HOSTILE, "status": HOSTILE,
                                                   "bounce_class": HOSTILE, "outcome": HOSTILE}]})

    endpoint = Endpoint.objects.create(tenant=tenant, url=f"https://hooks.example.net/{HOSTILE}", events=["bounced"],
                                       secret_encrypted=b"x", enabled=False, disabled_reason=HOSTILE,
                                       disabled_at=timezone.now())
    event = Event.objects.create(tenant=tenant, type="bounced", payload={"note": HOSTILE})
    Delivery.objects.create(tenant=tenant, event=event, endpoint=endpoint, webhook_id=f"msg_{uuid.uuid4().hex}",
                            status="failed", attempts=1, last_response_code=500, last_response_body=HOSTILE,
                            last_error=HOSTILE)
    return {"tenant": tenant, "message": message, "template": template, "endpoint": endpoint}


def assert_escaped(response):
    assert response.status_code == 200, response.status_code
    html = response.content.decode()
    assert MARKUP not in html, "hostile markup reached the page"


def test_portal_pages_escape_what_tenants_and_remote_servers_wrote(user, hostile):
    tenant, message = hostile["tenant"], hostile["message"]
    browser = logged_in(user)
    base = f"/portal/t/{tenant.id}"
    pages = ["/portal/tenants", "/portal/dns-providers", f"{base}/", f"{base}/settings", f"{base}/credentials",
             f"{base}/domains", f"{base}/templates", f"{base}/templates/{hostile['template'].id}", f"{base}/emails",
             f"{base}/emails/{message.id}", f"{base}/suppressions", f"{base}/webhooks",
             f"{base}/webhooks/{hostile['endpoint'].id}"]
    texts = []
    for url in pages:
        response = browser.get(url)
        assert_escaped(response)
        texts.append(response.content.decode())
    assert all(HOSTILE not in text for text in texts)
    assert sum("&lt;svg onload=alert(1)&gt;" in text for text in texts) == len(pages)  # shown, escaped


def test_admin_pages_escape_tenant_content_for_operators(hostile):
    from tenants.models import User

    operator = User.objects.create_superuser(email="operator@example.org", password="x" * 12)
    admin = Client()
    admin.force_login(operator)
    message, tenant = hostile["message"], hostile["tenant"]
    recipient = message.recipients.get()
    urls = ["/admin/sending/message/", f"/admin/sending/message/{message.pk}/change/", "/admin/sending/recipient/",
            f"/admin/sending/recipient/{recipient.pk}/change/", "/admin/sending/inboundreport/",
            f"/admin/sending/inboundreport/{InboundReport.objects.get().pk}/change/", "/admin/sending/suppression/",
            "/admin/tenants/tenant/", f"/admin/tenants/tenant/{tenant.pk}/change/", "/admin/tenants/credential/",
            "/admin/templates_app/template/", f"/admin/templates_app/template/{hostile['template'].pk}/change/",
            "/admin/webhooks/endpoint/", f"/admin/webhooks/endpoint/{hostile['endpoint'].pk}/change/",
            "/admin/webhooks/delivery/", "/admin/webhooks/event/", "/admin/domains/dnsprovider/"]
    for url in urls:
        assert_escaped(admin.get(url))
    assert_escaped(admin.post(f"/admin/sending/message/{message.pk}/body/"))  # the body, viewed on purpose


def test_portal_pages_allow_script_only_from_the_portals_own_files(client, user, hostile):
    """Behind autoescaping: were markup ever to slip through, the browser would run no inline
    script, and no other site may frame the portal."""
    message = hostile["message"]
    for response in (client.get("/portal/login"),
                     logged_in(user).get(f"/portal/t/{hostile['tenant'].id}/emails/{message.id}")):
        policy = {d.split()[0]: d.split()[1:] for d in response["Content-Security-Policy"].split(";") if d.strip()}
        assert policy["script-src"] == ["'self'"]
        assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
        assert "'unsafe-inline'" not in policy["default-src"]
