from django import forms
from django.conf import settings
from django.shortcuts import redirect, render

from tenants import services
from tenants.models import Credential

from .views_base import TenantPage, run_service


class CredentialForm(forms.Form):
    label = forms.CharField(max_length=200)


class Credentials(TenantPage):
    nav_name = "portal:credentials"

    @property
    def smtp_port(self):
        return (settings.DISPATCH_SMTP_STARTTLS_PORTS or [2525])[0]

    def _render(self, request, form, created=None):
        return render(request, "portal/credentials.html", self.context(
            form=form, credentials=Credential.objects.for_tenant(self.tenant), created=created,
            smtp_host=settings.DISPATCH_HOSTNAME, smtp_port=self.smtp_port, smtp_port_str=str(self.smtp_port),
            api_base=f"{settings.DISPATCH_PUBLIC_URL}/api/v1/dispatch/tenants/{self.tenant.id}",
        ))

    def get(self, request, tenant_id):
        return self._render(request, CredentialForm())

    def post(self, request, tenant_id):
        form = CredentialForm(request.POST)
        if not form.is_valid():
            return self._render(request, form)
        result = run_service(request, services.credential_create, tenant=self.tenant, label=form.cleaned_data["label"])
        if not result:
            return self._render(request, form)
        credential, password = result
        # Rendered directly (not redirected): the password exists only in this response.
        created = {"username": services.credential_username(credential), "password": password}
        return self._render(request, CredentialForm(), created=created)


class CredentialRevoke(TenantPage):
    def post(self, request, tenant_id, credential_id):
        run_service(request, services.credential_revoke, tenant=self.tenant, credential_id=credential_id,
                    success="Credential revoked.")
        return redirect("portal:credentials", self.tenant.id)
