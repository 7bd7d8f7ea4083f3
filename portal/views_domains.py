"""Sending domains: add, the DNS records to publish, verify, automatic DNS setup through one of
the user's DNS providers, remove."""
import uuid

from django import forms
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse

from domains import provider_services, selectors, services
from domains.apis import domain_data, stored_records_data
from domains.providers.setup import DMARC_ACTIONS, SPF_ACTIONS

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


# --- automatic DNS setup of a domain --------------------------------------------------------------
SPF_CHOICES = {"append": "Add this server to the existing SPF record (or create one)",
               "overwrite": "Replace the SPF record", "skip": "Leave SPF alone"}
DMARC_CHOICES = {"create": "Create one if there is none", "update": "Add a report address to the existing one",
                 "skip": "Leave DMARC alone"}


class DnsSetupForm(forms.Form):
    zone_id = forms.CharField(max_length=200, label="Zone")
    spf_action = forms.ChoiceField(label="SPF record", initial="append",
                                   choices=[(a, SPF_CHOICES[a]) for a in SPF_ACTIONS])
    dmarc_action = forms.ChoiceField(label="DMARC record", initial="create",
                                     choices=[(a, DMARC_CHOICES[a]) for a in DMARC_ACTIONS])
    dmarc_rua_email = forms.EmailField(label="DMARC report address (optional; needed to add one)", required=False)


def _uuid_or_404(value):
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise Http404("DNS provider not found") from None


def _covers(zone_name, domain_name):
    return domain_name == zone_name or domain_name.endswith("." + zone_name)


def dns_setup_context(request, domain):
    """What the domain page shows of the setup: the user's providers, and once one is chosen
    (?provider=<id>) its zones, the one holding the domain preselected. Listing zones asks the
    provider's API, so it happens only on that explicit choice."""
    providers = list(provider_services.dns_providers_of(request.user))
    chosen = next((p for p in providers if str(p.id) == request.GET.get("provider")), None)
    zones = None
    if chosen is not None:
        zones = run_service(request, provider_services.dns_provider_zones, owner=request.user, provider_id=chosen.id)
        zones = zones if isinstance(zones, list) else None
    best = max((z for z in zones or () if _covers(z.name, domain.name)), key=lambda z: len(z.name), default=None)
    return {"dns_providers": providers, "setup_provider": chosen, "setup_zones": zones,
            "setup_form": DnsSetupForm(initial={"zone_id": best.id if best else ""}) if zones else None}


class DomainDnsSetup(TenantPage):
    def post(self, request, tenant_id, domain_id):
        domain = object_or_404(selectors.domain_get, tenant=self.tenant, domain_id=domain_id)
        dns_provider = object_or_404(provider_services.dns_provider_get, owner=request.user,
                                     provider_id=_uuid_or_404(request.POST.get("provider_id")))
        form = DnsSetupForm(request.POST)
        if not form.is_valid():
            for field, errors in form.errors.items():
                messages.error(request, f"{form.fields[field].label}: {' '.join(errors)}")
            return redirect(reverse("portal:domain", args=[self.tenant.id, domain.id]) + f"?provider={dns_provider.id}")
        data = form.cleaned_data
        result = run_service(
            request, provider_services.domain_dns_setup, tenant=self.tenant, domain_id=domain.id, owner=request.user,
            provider_id=dns_provider.id, zone_id=data["zone_id"], spf_action=data["spf_action"],
            dmarc_action=data["dmarc_action"], dmarc_rua_email=data["dmarc_rua_email"] or None,
        )
        if result:
            steps, domain, checks = result
            changed = sum(step["status"] in ("created", "updated") for step in steps)
            messages.success(request, f"DNS setup through {dns_provider.label}: {changed} record(s) created or updated, "
                                      f"{len(steps) - changed} left as they were.")
            show_verification(request, domain, checks)
        return redirect("portal:domain", self.tenant.id, domain.id)
