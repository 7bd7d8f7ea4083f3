"""Webhooks: add (the signing secret shown once), events, enable/disable, delivery log, send a
test event, replay a delivery, delete."""
from django import forms
from django.http import Http404
from django.shortcuts import redirect, render

from webhooks import selectors, services
from webhooks.models import EVENT_TYPES, Delivery

from .views_base import TenantPage, object_or_404, page_of, run_service


class EndpointForm(forms.Form):
    url = forms.CharField(max_length=services.MAX_URL_LENGTH, label="Endpoint URL",
                          widget=forms.URLInput(attrs={"placeholder": "https://example.com/webhooks/dispatch"}))
    events = forms.MultipleChoiceField(choices=[(e, e) for e in EVENT_TYPES], widget=forms.CheckboxSelectMultiple,
                                       initial=["delivered", "bounced", "complained"])


class Webhooks(TenantPage):
    nav_name = "portal:webhooks"

    def _render(self, request, form, created=None):
        return render(request, "portal/webhooks.html", self.context(
            form=form, endpoints=selectors.endpoints_of(self.tenant), created=created,
        ))

    def get(self, request, tenant_id):
        return self._render(request, EndpointForm())

    def post(self, request, tenant_id):
        form = EndpointForm(request.POST)
        if form.is_valid():
            result = run_service(request, services.endpoint_create, tenant=self.tenant, url=form.cleaned_data["url"],
                                 events=form.cleaned_data["events"], success="Webhook added.")
            if result:
                endpoint, secret = result
                # Rendered directly (not redirected): the secret exists only in this response.
                return self._render(request, EndpointForm(), created={"endpoint": endpoint, "secret": secret})
        return self._render(request, form)


class WebhookDetail(TenantPage):
    nav_name = "portal:webhooks"

    def _render(self, request, endpoint, form):
        status = request.GET.get("status") or None
        if status not in Delivery.Status.values:
            status = None
        page = page_of(request, selectors.deliveries_of(tenant=self.tenant, endpoint=endpoint, status=status), 25)
        return render(request, "portal/webhook.html", self.context(
            endpoint=endpoint, form=form, page=page, status=status, statuses=Delivery.Status.values,
        ))

    def get(self, request, tenant_id, webhook_id):
        endpoint = object_or_404(selectors.endpoint_get, tenant=self.tenant, endpoint_id=webhook_id)
        return self._render(request, endpoint, EndpointForm(initial={"url": endpoint.url, "events": endpoint.events}))

    def post(self, request, tenant_id, webhook_id):
        endpoint = object_or_404(selectors.endpoint_get, tenant=self.tenant, endpoint_id=webhook_id)
        form = EndpointForm(request.POST)
        if form.is_valid():
            if run_service(request, services.endpoint_update, tenant=self.tenant, endpoint_id=endpoint.id,
                           url=form.cleaned_data["url"], events=form.cleaned_data["events"], success="Webhook saved."):
                return redirect("portal:webhook", self.tenant.id, endpoint.id)
        return self._render(request, endpoint, form)


class WebhookAction(TenantPage):
    """POST-only buttons of the webhook page: test, enable, disable, delete."""

    ACTIONS = ("test", "enable", "disable", "delete")

    def post(self, request, tenant_id, webhook_id, action):
        if action not in self.ACTIONS:
            raise Http404("Unknown action")
        endpoint = object_or_404(selectors.endpoint_get, tenant=self.tenant, endpoint_id=webhook_id)
        if action == "test":
            run_service(request, services.endpoint_send_test, tenant=self.tenant, endpoint_id=endpoint.id,
                        success="Test event queued: it appears in the delivery log below.")
        elif action in ("enable", "disable"):
            run_service(request, services.endpoint_update, tenant=self.tenant, endpoint_id=endpoint.id,
                        enabled=action == "enable", success=f"Webhook {action}d.")
        elif run_service(request, services.endpoint_delete, tenant=self.tenant, endpoint_id=endpoint.id,
                         success="Webhook deleted."):
            return redirect("portal:webhooks", self.tenant.id)
        return redirect("portal:webhook", self.tenant.id, endpoint.id)


class WebhookReplay(TenantPage):
    def post(self, request, tenant_id, webhook_id, delivery_id):
        endpoint = object_or_404(selectors.endpoint_get, tenant=self.tenant, endpoint_id=webhook_id)
        object_or_404(selectors.delivery_get, tenant=self.tenant, endpoint=endpoint, delivery_id=delivery_id)
        run_service(request, services.delivery_replay, tenant=self.tenant, endpoint_id=endpoint.id,
                    delivery_id=delivery_id, success="Delivery queued again.")
        return redirect("portal:webhook", self.tenant.id, endpoint.id)
