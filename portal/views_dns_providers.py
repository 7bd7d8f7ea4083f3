"""DNS providers a user connects: they belong to the person, not to a tenant. (A domain's
automatic DNS setup through one of them is on the domain's page: views_domains.)"""
from django import forms
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.shortcuts import redirect, render
from django.views import View

from domains import provider_services
from domains.models import DnsProvider

from .views_base import object_or_404, run_service

# The credential fields of each provider, as the form shows them.
PROVIDER_FIELDS = {
    "cloudflare": ["token"],
    "route53": ["access_key", "secret_key", "region"],
    "gcp": ["service_account_json", "project_id"],
}


class SecretTextarea(forms.Textarea):
    """A textarea that, like PasswordInput, never sends what was typed back in the page: after a
    refused connection the key is pasted again instead of sitting in the HTML."""

    def format_value(self, value):
        return None


class ConnectForm(forms.Form):
    provider = forms.ChoiceField(choices=DnsProvider.Provider.choices)
    label = forms.CharField(max_length=200, required=False, help_text="A name to recognise this account by.")
    token = forms.CharField(label="API token", required=False, max_length=500, widget=forms.PasswordInput,
                            help_text="A Cloudflare API token with Zone:Read and DNS:Edit permissions.")
    access_key = forms.CharField(label="Access key ID", required=False, max_length=200)
    secret_key = forms.CharField(label="Secret access key", required=False, max_length=200, widget=forms.PasswordInput)
    region = forms.CharField(label="Region (optional)", required=False, max_length=50)
    service_account_json = forms.CharField(label="Service account key (JSON)", required=False,
                                           widget=SecretTextarea(attrs={"rows": 5}))
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
