"""DNS providers a user connects (they belong to the person, not to a tenant), and the automatic
DNS setup of a domain through one of them."""
import uuid

from django import forms
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View

from domains import provider_services, selectors
from domains.models import DnsProvider
from domains.providers.setup import DMARC_ACTIONS, SPF_ACTIONS

from .views_base import TenantPage, object_or_404, run_service
from .views_domains import show_verification

# The credential fields of each provider, as the form shows them.
PROVIDER_FIELDS = {
    "cloudflare": ["token"],
    "route53": ["access_key", "secret_key", "region"],
    "gcp": ["service_account_json", "project_id"],
}


class ConnectForm(forms.Form):
    provider = forms.ChoiceField(choices=DnsProvider.Provider.choices)
    label = forms.CharField(max_length=200, required=False, help_text="A name to recognise this account by.")
    token = forms.CharField(label="API token", required=False, max_length=500, widget=forms.PasswordInput,
                            help_text="A Cloudflare API token with Zone:Read and DNS:Edit permissions.")
    access_key = forms.CharField(label="Access key ID", required=False, max_length=200)
    secret_key = forms.CharField(label="Secret access key", required=False, max_length=200, widget=forms.PasswordInput)
    region = forms.CharField(label="Region (optional)", required=False, max_length=50)
    service_account_json = forms.CharField(label="Service account key (JSON)", required=False,
                                           widget=forms.Textarea(attrs={"rows": 5}))
    project_id = forms.CharField(label="Project ID (optional: taken from the key)", required=False, max_length=100)


class DnsProviders(LoginRequiredMixin, View):
    def _render(self, request, form):
        return render(request, "portal/dns_providers.html", {
            "form": form, "providers": provider_services.dns_providers_of(request.user), "provider_fields": PROVIDER_FIELDS,
        })

    def get(self, request):
        return self._render(request, ConnectForm())

    def post(self, request):
        form = ConnectForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            credentials = {name: data[name] for name in PROVIDER_FIELDS[data["provider"]]}
            # The service checks the credentials with the provider before storing them.
            connected = run_service(request, provider_services.dns_provider_connect, owner=request.user,
                                    provider=data["provider"], label=data["label"], credentials=credentials)
            if connected:
                messages.success(request, f"{connected.label} connected: the provider accepted the credentials.")
                return redirect("portal:dns_providers")
        return self._render(request, form)


class DnsProviderDisconnect(LoginRequiredMixin, View):
    def post(self, request, provider_id):
        dns_provider = object_or_404(provider_services.dns_provider_get, owner=request.user, provider_id=provider_id)
        run_service(request, provider_services.dns_provider_delete, owner=request.user, provider_id=dns_provider.id,
                    success=f"{dns_provider.label} disconnected; its credentials were deleted.")
        return redirect("portal:dns_providers")


# --- automatic DNS setup of a domain --------------------------------------------------------------
class DnsSetupForm(forms.Form):
    zone_id = forms.CharField(max_length=200, label="Zone")
    spf_action = forms.ChoiceField(label="SPF record", initial="append", choices=[
        (a, {"append": "Add this server to the existing SPF record (or create one)", "overwrite": "Replace the SPF record",
             "skip": "Leave SPF alone"}[a]) for a in SPF_ACTIONS])
    dmarc_action = forms.ChoiceField(label="DMARC record", initial="create", choices=[
        (a, {"create": "Create one if there is none", "update": "Add a report address to the existing one",
             "skip": "Leave DMARC alone"}[a]) for a in DMARC_ACTIONS])
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
