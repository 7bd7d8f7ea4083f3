from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from . import services
from .models import MasterTemplate, Template


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    """Tenants own their templates (API/portal); operators look, and may delete abusive ones."""

    list_display = ["name", "slug", "tenant", "updated_at"]
    search_fields = ["name", "slug", "tenant__name", "id"]
    list_select_related = ["tenant"]
    readonly_fields = ["id", "tenant", "name", "slug", "subject", "html_body", "text_body", "variables",
                       "created_at", "updated_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(MasterTemplate)
class MasterTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "is_active", "updated_at"]
    readonly_fields = ["is_active", "created_at", "updated_at"]
    fields = ["name", "html", "is_active", "created_at", "updated_at"]
    actions = ["activate", "deactivate"]

    @admin.action(description="Activate (the one master template used by use_master_template)")
    def activate(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one master template to activate.", messages.ERROR)
            return
        master = queryset.get()
        try:
            services.master_template_activate(master_template=master)
        except ValidationError as exc:
            self.message_user(request, f"Not activated: {'; '.join(exc.messages)}", messages.ERROR)
            return
        self.message_user(request, f"{master.name} is now the active master template.", messages.SUCCESS)

    @admin.action(description="Deactivate (sends fall back to the built-in wrapper)")
    def deactivate(self, request, queryset):
        for master in queryset:
            services.master_template_deactivate(master_template=master)
        self.message_user(request, f"{queryset.count()} master template(s) deactivated.", messages.SUCCESS)
