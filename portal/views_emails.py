"""The email log: a filterable list, and one message with its content, recipients, delivery
attempts and bounce reports."""
from django import forms
from django.shortcuts import redirect, render

from dispatch_site.errors import DispatchError
from sending import selectors, services
from sending.models import InboundReport, Message
from webhooks.models import Event

from .views_base import TenantPage, object_or_404, page_of, run_service

# Events whose payload explains what happened to a recipient beyond the last SMTP reply.
REPORT_EVENTS = ("bounced", "complained", "failed", "suppressed", "unsubscribed")


class LogFilter(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("", "Any status")] + list(Message.Status.choices))
    recipient = forms.CharField(required=False, max_length=320, widget=forms.TextInput(attrs={"type": "search"}))
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    tag = forms.CharField(required=False, max_length=100)


class Emails(TenantPage):
    nav_name = "portal:emails"

    def get(self, request, tenant_id):
        form = LogFilter(request.GET)
        filters = form.cleaned_data if form.is_valid() else {}
        page = None
        try:
            queryset = selectors.emails_of_tenant(
                self.tenant, status=filters.get("status") or None, recipient=filters.get("recipient") or None,
                date_from=filters["date_from"].isoformat() if filters.get("date_from") else None,
                date_to=filters["date_to"].isoformat() if filters.get("date_to") else None,
                tag=filters.get("tag") or None,
            )
            page = page_of(request, queryset)
        except DispatchError as exc:
            form.add_error(None, exc.message)
        return render(request, "portal/emails.html", self.context(form=form, page=page))


def _report_events(tenant, message):
    """The bounce/complaint/failure events recorded for this message, per recipient address."""
    events = (Event.objects.for_tenant(tenant).filter(created_at__gte=message.queued_at, type__in=REPORT_EVENTS,
                                                      payload__email_id=str(message.id)).order_by("created_at")[:200])
    by_recipient = {}
    for event in events:
        details = {k: v for k, v in event.payload.items()
                   if k not in ("event", "timestamp", "recipient", "sender", "message_id", "email_id", "tenant_id",
                                "tags", "metadata")}
        by_recipient.setdefault(event.payload.get("recipient", "").lower(), []).append(
            {"type": event.type, "at": event.created_at, "details": details})
    return by_recipient


class EmailDetail(TenantPage):
    nav_name = "portal:emails"

    def get(self, request, tenant_id, email_id):
        message = object_or_404(selectors.email_get, tenant=self.tenant, message_id=email_id)
        reports = _report_events(self.tenant, message)
        recipients = [(r, reports.get(r.email.lower(), [])) for r in message.recipients.all()]
        inbound = InboundReport.objects.filter(tenant=self.tenant, message=message).defer("raw").order_by("received_at")
        return render(request, "portal/email.html", self.context(
            message=message, content=selectors.message_content(message), recipients=recipients, inbound_reports=inbound,
        ))


class EmailErase(TenantPage):
    def post(self, request, tenant_id, email_id):
        message = object_or_404(selectors.email_get, tenant=self.tenant, message_id=email_id)
        run_service(request, services.message_erase_body, tenant=self.tenant, message_id=message.id,
                    success="Body erased; the delivery record stays until the log entry expires.")
        return redirect("portal:email", self.tenant.id, message.id)
