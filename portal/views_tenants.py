from django import forms
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from sending.delivery.selectors import queue_summary
from tenants import selectors, services
from webhooks import selectors as webhook_selectors

from .charts import SERIES, daily_chart_svg, daily_counts
from .views_base import TenantPage, run_service


@login_required
def tenant_list(request):
    return render(request, "portal/tenants.html", {"tenants": selectors.tenants_of_user(request.user)})


class TenantForm(forms.Form):
    tenant_name = forms.CharField(max_length=200, label="Name")
    plan = forms.ChoiceField(choices=())

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["plan"].choices = [
            (p.slug, f"{p.name} — {p.monthly_quota:,} emails/month, {p.rate_limit_per_minute}/min")
            for p in selectors.public_plans()
        ]


@login_required
@require_http_methods(["GET", "POST"])
def tenant_create(request):
    form = TenantForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        tenant = run_service(request, services.tenant_create, owner=request.user,
                             name=form.cleaned_data["tenant_name"], plan=form.cleaned_data["plan"],
                             success="Tenant created.")
        if tenant:
            return redirect("portal:dashboard", tenant.id)
    return render(request, "portal/tenant_create.html", {"form": form})


class SettingsForm(forms.Form):
    tenant_name = forms.CharField(max_length=200, label="Name")
    overage_enabled = forms.BooleanField(required=False, label="Allow overage after the monthly quota")


class TenantSettings(TenantPage):
    nav_name = "portal:tenant_settings"

    def get(self, request, tenant_id):
        form = SettingsForm(initial={"tenant_name": self.tenant.name, "overage_enabled": self.tenant.overage_enabled})
        return render(request, "portal/tenant_settings.html", self.context(form=form))

    def post(self, request, tenant_id):
        form = SettingsForm(request.POST)
        if form.is_valid():
            done = run_service(request, services.tenant_update, tenant=self.tenant, name=form.cleaned_data["tenant_name"],
                               overage_enabled=form.cleaned_data["overage_enabled"], success="Settings saved.")
            if done:
                return redirect("portal:tenant_settings", self.tenant.id)
        return render(request, "portal/tenant_settings.html", self.context(form=form))


class Dashboard(TenantPage):
    nav_name = "portal:dashboard"

    def get(self, request, tenant_id):
        period = selectors.period_start()
        usage = selectors.usage_summary(self.tenant, period)
        days = daily_counts(self.tenant, period)
        return render(request, "portal/dashboard.html", self.context(
            usage=usage, period=period, quota_used_pct=min(usage["stats"]["quota_used_pct"], 100),
            days=days, chart=daily_chart_svg(days), series=SERIES,
            queue=queue_summary(tenant=self.tenant),
            disabled_webhooks=list(webhook_selectors.disabled_endpoints(self.tenant)),
        ))
