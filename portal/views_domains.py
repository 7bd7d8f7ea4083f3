"""Sending domains: add, the DNS records to publish, verify, remove. (The automatic DNS setup
through a connected provider lives in views_dns_providers.)"""
from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render

from domains import selectors, services
from domains.apis import domain_data, stored_records_data

from .views_base import TenantPage, object_or_404, run_service


class DomainForm(forms.Form):
    domain = forms.CharField(max_length=300, label="Domain name",
                             help_text="The domain of your From addresses, e.g. example.com or mail.example.com.")


class Domains(TenantPage):
    nav_name = "portal:domains"

    def _render(self, request, form):
        domains = [domain_data(d) for d in selectors.domains_of_tenant(self.tenant)]
        return render(request, "portal/domains.html", self.context(form=form, domains=domains))

    def get(self, request, tenant_id):
        return self._render(request, DomainForm())

    def post(self, request, tenant_id):
        form = DomainForm(request.POST)
        if form.is_valid():
            domain = run_service(request, services.domain_create, tenant=self.tenant, name=form.cleaned_data["domain"],
                                 success="Domain added. Publish the DNS records below, then press Verify.")
            if domain:
                return redirect("portal:domain", self.tenant.id, domain.id)
        return self._render(request, form)


class DomainDetail(TenantPage):
    nav_name = "portal:domains"

    def get(self, request, tenant_id, domain_id):
        from .views_dns_providers import dns_setup_context

        domain = object_or_404(selectors.domain_get, tenant=self.tenant, domain_id=domain_id)
        return render(request, "portal/domain.html", self.context(
            domain=domain, info=domain_data(domain), records=stored_records_data(domain),
            **dns_setup_context(request, domain),
        ))


def show_verification(request, domain, checks):
    """The outcome of a DNS check in words: usable or not, and what the ownership record said."""
    ownership = next(c for c in checks if c.kind == "verification")
    if domain.is_usable():
        messages.success(request, f"{domain.name} is verified: you can send from it. {ownership.message}")
    else:
        messages.error(request, f"{domain.name} is not verified yet. {ownership.message}")


class DomainVerify(TenantPage):
    def post(self, request, tenant_id, domain_id):
        domain = object_or_404(selectors.domain_get, tenant=self.tenant, domain_id=domain_id)
        result = run_service(request, services.domain_verify, tenant=self.tenant, domain_id=domain.id)
        if result:
            show_verification(request, *result)
        return redirect("portal:domain", self.tenant.id, domain.id)


class DomainDelete(TenantPage):
    def post(self, request, tenant_id, domain_id):
        domain = object_or_404(selectors.domain_get, tenant=self.tenant, domain_id=domain_id)
        run_service(request, services.domain_delete, tenant=self.tenant, domain_id=domain.id,
                    success=f"{domain.name} removed.")
        return redirect("portal:domains", self.tenant.id)
