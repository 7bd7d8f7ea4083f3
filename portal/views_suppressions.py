"""The suppression list: search, add, remove."""
from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render

from sending import selectors
from sending.suppressions import suppression_add, suppression_remove

from .views_base import TenantPage, object_or_404, page_of, run_service


class SuppressionForm(forms.Form):
    email = forms.CharField(max_length=320, label="Email address")
    reason = forms.CharField(max_length=1000, required=False)


class Suppressions(TenantPage):
    nav_name = "portal:suppressions"

    def _render(self, request, form):
        search = request.GET.get("q", "").strip()
        page = page_of(request, selectors.suppressions_of_tenant(self.tenant, search=search or None))
        return render(request, "portal/suppressions.html", self.context(form=form, page=page, search=search))

    def get(self, request, tenant_id):
        return self._render(request, SuppressionForm())

    def post(self, request, tenant_id):
        form = SuppressionForm(request.POST)
        if form.is_valid():
            result = run_service(request, suppression_add, tenant=self.tenant, email=form.cleaned_data["email"],
                                 reason=form.cleaned_data["reason"])
            if result:
                suppression, created = result
                if created:
                    messages.success(request, f"{suppression.email} added: mail to it is refused from now on.")
                else:
                    messages.info(request, f"{suppression.email} was already on the list ({suppression.source}).")
                return redirect("portal:suppressions", self.tenant.id)
        return self._render(request, form)


class SuppressionRemove(TenantPage):
    def post(self, request, tenant_id, suppression_id):
        suppression = object_or_404(selectors.suppression_get, tenant=self.tenant, suppression_id=suppression_id)
        run_service(request, suppression_remove, tenant=self.tenant, suppression_id=suppression.id,
                    success=f"{suppression.email} removed: mail to it is accepted again.")
        return redirect("portal:suppressions", self.tenant.id)
