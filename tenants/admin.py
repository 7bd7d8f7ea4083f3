from django.contrib import admin, messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import OuterRef, Subquery
from django.urls import reverse_lazy

from dispatch_site.api.throttling import LimitedPasswordChangeForm

from . import compliance, selectors, services
from .models import Credential, Plan, Tenant, UsageCounter, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "is_active", "is_staff", "date_joined"]
    search_fields = ["email"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)


class AdminPasswordChangeView(auth_views.PasswordChangeView):
    """The admin's own "Change password" page, with the old password checked under the login
    limits (routed ahead of admin.site.urls in dispatch_site/urls.py)."""

    form_class = LimitedPasswordChangeForm
    template_name = "registration/password_change_form.html"
    success_url = reverse_lazy("admin:password_change_done")

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        del kwargs["user"]
        return {**kwargs, "request": self.request}

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), **admin.site.each_context(self.request)}


admin_password_change = admin.site.admin_view(AdminPasswordChangeView.as_view())


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "monthly_quota", "rate_limit_per_minute", "log_retention_days",
                    "overage_allowed", "overage_price_per_1000", "is_public"]
    prepopulated_fields = {"slug": ["name"]}


class ComplianceFlaggedFilter(admin.SimpleListFilter):
    """Tenants flagged by the compliance guard (tenants/compliance.py)."""

    title = "compliance flagged"
    parameter_name = "compliance_flagged"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(compliance_flagged_at__isnull=self.value() == "no")
        return queryset


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "plan", "status", "used_this_month", "overage_enabled", "compliance_reason",
                    "created_at"]
    list_filter = ["status", "plan", ComplianceFlaggedFilter]
    list_select_related = ["owner", "plan"]
    search_fields = ["name", "owner__email", "id"]
    readonly_fields = ["status", "status_reason", "usage_this_month", "compliance_flagged_at", "compliance_reason",
                       "compliance_reviewed_at", "created_at", "updated_at"]
    actions = ["suspend", "block", "reactivate", "compliance_reviewed"]

    def get_queryset(self, request):
        this_month = UsageCounter.objects.filter(tenant=OuterRef("pk"), period=selectors.period_start())
        return super().get_queryset(request).annotate(sent_this_month=Subquery(this_month.values("emails_sent")[:1]))

    @admin.display(description="used this month", ordering="sent_this_month")
    def used_this_month(self, tenant):
        sent, quota = tenant.sent_this_month or 0, tenant.plan.monthly_quota
        return f"{sent:,} / {quota:,} ({100 * sent / quota:.1f}%)" if quota else f"{sent:,}"

    @admin.display(description="usage this month")
    def usage_this_month(self, tenant):
        usage = selectors.usage_summary(tenant)
        rates, breakdown = usage["rates"], usage["breakdown"]
        return (f"{usage['emails_sent']:,} of {usage['monthly_quota']:,} sent ({usage['stats']['quota_used_pct']}%), "
                f"overage {usage['stats']['overage']:,}; delivered {breakdown['delivered']:,} "
                f"({rates['delivery_rate_pct']}%), hard bounces {rates['hard_bounce_rate_pct']}%, "
                f"soft bounces {rates['soft_bounce_rate_pct']}%, complaints {rates['complaint_rate_pct']}%")

    def _set_status(self, request, queryset, status):
        for tenant in queryset:
            services.tenant_set_status(tenant=tenant, status=status, reason=f"set by operator {request.user}")
        self.message_user(request, f"{queryset.count()} tenant(s) now {status}.", messages.SUCCESS)

    @admin.action(description="Suspend selected tenants")
    def suspend(self, request, queryset):
        self._set_status(request, queryset, Tenant.Status.SUSPENDED)

    @admin.action(description="Block selected tenants")
    def block(self, request, queryset):
        self._set_status(request, queryset, Tenant.Status.BLOCKED)

    @admin.action(description="Reactivate selected tenants")
    def reactivate(self, request, queryset):
        self._set_status(request, queryset, Tenant.Status.ACTIVE)

    @admin.action(description="Compliance reviewed: clear flag, lift compliance suspension, no auto-suspension this month")
    def compliance_reviewed(self, request, queryset):
        for tenant in queryset:
            compliance.compliance_mark_reviewed(tenant=tenant)
        self.message_user(request, f"{queryset.count()} tenant(s) marked compliance-reviewed.", messages.SUCCESS)


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin):
    list_display = ["name", "label", "tenant", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "label", "tenant__name"]
    readonly_fields = ["name", "label", "tenant", "secret_digest", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # credentials are created by their tenant, where the secret can be shown once

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Revoke selected credentials")
    def revoke(self, request, queryset):
        for credential in queryset:
            services.credential_revoke(tenant=credential.tenant, credential_id=credential.pk)
        self.message_user(request, f"{queryset.count()} credential(s) revoked.", messages.SUCCESS)
