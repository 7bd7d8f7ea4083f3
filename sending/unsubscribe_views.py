"""RFC 8058 one-click unsubscribe: `{DISPATCH_PUBLIC_URL}/u/<token>` (token: sending/unsubscribe.py).

GET shows a confirmation page whose button POSTs back; a POST with the body
`List-Unsubscribe=One-Click` (what mailbox providers send, and what the page's button sends)
suppresses the address for the message's tenant. No login and no CSRF cookie: providers POST
without cookies, and the signed per-recipient token is the authorization. A forged or altered
token answers 400 and changes nothing. GET never changes anything (link scanners prefetch).
"""
from django.db import transaction
from django.http import HttpResponse
from django.utils.html import escape
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

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


def recipient_unsubscribe(*, recipient):
    """Suppress the recipient's address for its tenant (reason and source "unsubscribe") and emit
    `unsubscribed`. Idempotent: returns False, and emits nothing, when it was already suppressed."""
    from .events import emit
    from .suppressions import suppression_add

    with transaction.atomic():
        _, created = suppression_add(
            tenant=recipient.tenant, email=recipient.email, reason="unsubscribe", source=Suppression.Source.UNSUBSCRIBE,
            source_message=recipient.message,
        )
        if created:
            emit("unsubscribed", recipient=recipient, message=recipient.message, tenant=recipient.tenant)
    return created


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
    recipient_id = read_token(token)
    if recipient_id is None:
        return _page("Invalid link", "<p>This unsubscribe link is not valid.</p>", status=400)
    recipient = Recipient.objects.select_related("message", "tenant").filter(pk=recipient_id).first()
    if recipient is None:
        return _page("Link expired", "<p>This unsubscribe link has expired.</p>", status=410)
    sender = escape(recipient.message.from_address.rpartition("@")[2])
    if request.method == "GET":
        return _page(
            "Unsubscribe",
            f"<p>Stop receiving email from <b>{sender}</b> at <b>{escape(_masked(recipient.email))}</b>?</p>"
            f'<form method="post"><input type="hidden" name="{ONE_CLICK_FIELD}" value="{ONE_CLICK_VALUE}">'
            "<button type=\"submit\">Unsubscribe</button></form>",
        )
    if request.POST.get(ONE_CLICK_FIELD) != ONE_CLICK_VALUE:
        return _page("Bad request", f"<p>Expected <code>{ONE_CLICK_FIELD}={ONE_CLICK_VALUE}</code>.</p>", status=400)
    recipient_unsubscribe(recipient=recipient)
    return _page("Unsubscribed", f"<p>You will no longer receive email from <b>{sender}</b> at this address.</p>")
