"""RFC 8058 one-click unsubscribe: `{DISPATCH_PUBLIC_URL}/u/<token>` (token: sending/unsubscribe.py).

GET shows a confirmation page whose button POSTs back; a POST with the body
`List-Unsubscribe=One-Click` (what mailbox providers send, and what the page's button sends)
suppresses the address for the message's tenant. No login and no CSRF cookie: providers POST
without cookies, and the encrypted per-recipient token is the authorization. A forged or altered
token answers 400 and changes nothing. GET never changes anything (link scanners prefetch).

A token carries its tenant and address, so it still unsubscribes after log retention deleted the
message and its recipient rows; its `unsubscribed` event then has the message's fields null.
A token of the old signed-id form carries neither: once its row is gone it answers 410.
"""
from django.db import transaction
from django.http import HttpResponse
from django.utils.html import escape
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from tenants.models import Tenant

from .models import Recipient, Suppression
from .unsubscribe import read_token

ONE_CLICK_FIELD = "List-Unsubscribe"
ONE_CLICK_VALUE = "One-Click"

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}}
button{{font:inherit;padding:.5rem 1.2rem;cursor:pointer}}</style></head>
<body><h1>{title}</h1>{body}</body></html>"""


def address_unsubscribe(*, tenant, email, recipient=None):
    """Suppress `email` for `tenant` (reason and source "unsubscribe") and emit `unsubscribed`:
    for the link's recipient row while it exists, else (log retention deleted the message) for
    the address, with the message's fields null. Idempotent: returns False, and emits nothing,
    when the address was already suppressed."""
    from .events import emit, emit_for_address
    from .suppressions import suppression_add

    message = recipient.message if recipient is not None else None
    with transaction.atomic():
        _, created = suppression_add(
            tenant=tenant, email=email, reason="unsubscribe", source=Suppression.Source.UNSUBSCRIBE, source_message=message,
        )
        if created and recipient is not None:
            emit("unsubscribed", recipient=recipient, message=message, tenant=tenant)
        elif created:
            emit_for_address("unsubscribed", tenant=tenant, email=email)
    return created


def _unsubscriber(claim):
    """(tenant, address, recipient row or None) a valid token unsubscribes, or None when nothing
    is left to unsubscribe (an old-form token whose row is gone, or a deleted tenant)."""
    rows = Recipient.objects.select_related("message", "tenant").filter(pk=claim.recipient_id)
    if claim.tenant_id is not None:
        rows = rows.filter(tenant_id=claim.tenant_id, email=claim.email)
    recipient = rows.first()
    if recipient is not None:
        return recipient.tenant, recipient.email, recipient
    if claim.tenant_id is None:
        return None
    tenant = Tenant.objects.filter(pk=claim.tenant_id).first()
    return (tenant, claim.email, None) if tenant is not None else None


def _page(title, body, status=200):
    response = HttpResponse(_PAGE.format(title=escape(title), body=body), status=status, content_type="text/html; charset=utf-8")
    response["Cache-Control"] = "no-store"
    response["X-Robots-Tag"] = "noindex"
    return response


def _masked(email):
    local, _, domain = email.partition("@")
    return f"{local[:1]}{'*' * min(max(len(local) - 1, 1), 8)}@{domain}"


@csrf_exempt
@require_http_methods(["GET", "POST"])
def one_click_unsubscribe(request, token):
    claim = read_token(token)
    if claim is None:
        return _page("Invalid link", "<p>This unsubscribe link is not valid.</p>", status=400)
    found = _unsubscriber(claim)
    if found is None:
        return _page("Link expired", "<p>This unsubscribe link has expired.</p>", status=410)
    tenant, email, recipient = found
    sender = f"<b>{escape(recipient.message.from_address.rpartition('@')[2])}</b>" if recipient is not None else "this sender"
    if request.method == "GET":
        return _page(
            "Unsubscribe",
            f"<p>Stop receiving email from {sender} at <b>{escape(_masked(email))}</b>?</p>"
            f'<form method="post"><input type="hidden" name="{ONE_CLICK_FIELD}" value="{ONE_CLICK_VALUE}">'
            "<button type=\"submit\">Unsubscribe</button></form>",
        )
    if request.POST.get(ONE_CLICK_FIELD) != ONE_CLICK_VALUE:
        return _page("Bad request", f"<p>Expected <code>{ONE_CLICK_FIELD}={ONE_CLICK_VALUE}</code>.</p>", status=400)
    address_unsubscribe(tenant=tenant, email=email, recipient=recipient)
    return _page("Unsubscribed", f"<p>You will no longer receive email from {sender} at this address.</p>")
