from django.contrib import admin, messages

from . import services
from .models import DnsProvider, Domain


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "status", "dns_records", "verified_at", "warning_since", "last_checked_at",
                    "created_at"]
    list_filter = ["status", "verified_without_dns"]
    search_fields = ["name", "tenant__name", "id"]
    # The private key never appears here, not even encrypted.
    fields = ["name", "tenant", "status", "dkim_selector", "dkim_public_key", "verification_token", "verified_at",
              "warning_since", "status_changed_at", "last_checked_at", "next_check_at", "verified_without_dns",
              "dns_check", "created_at", "updated_at"]
    readonly_fields = fields
    actions = ["reverify"]

    def has_add_permission(self, request):
        return False  # domains are added by their tenant (the API generates token and keys)

    @admin.display(description="DNS records (last check)")
    def dns_records(self, domain):
        records = domain.dns_check.get("records", {})
        return ", ".join(f"{kind} {result.get('status')}" for kind, result in records.items()) or "not checked"

    @admin.action(description="Re-verify DNS now")
    def reverify(self, request, queryset):
        verified = 0
        for domain in queryset:
            domain, _ = services.domain_verify(tenant=domain.tenant, domain_id=domain.pk)
            verified += domain.status == Domain.Status.VERIFIED
        self.message_user(request, f"{queryset.count()} domain(s) checked, {verified} verified.", messages.SUCCESS)


@admin.register(DnsProvider)
class DnsProviderAdmin(admin.ModelAdmin):
    """Users' connected DNS accounts: who connected what. The credentials never appear here."""

    list_display = ["label", "provider", "owner", "created_at"]
    list_filter = ["provider"]
    search_fields = ["label", "owner__email", "id"]
    fields = ["id", "owner", "provider", "label", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False  # connected by the user, whose credentials are checked with the provider first

    def has_change_permission(self, request, obj=None):
        return False
