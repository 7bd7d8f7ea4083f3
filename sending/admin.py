"""Operator views. Message bodies are never shown here: operators see metadata only."""
from django.contrib import admin

from .models import DeliveryAttempt, Message, Recipient, Suppression


class RecipientInline(admin.TabularInline):
    model = Recipient
    fields = ("email", "kind", "status", "attempts", "next_attempt_at", "last_response_code", "last_response_text", "bounce_type")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).defer("captured_message")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("message_id", "tenant", "from_address", "subject", "status", "source", "queued_at")
    list_filter = ("status", "source", "has_attachments")
    search_fields = ("message_id", "header_message_id", "from_address", "subject", "id")
    date_hierarchy = "queued_at"
    list_select_related = ("tenant",)
    exclude = ("body",)
    readonly_fields = (
        "id", "tenant", "message_id", "header_message_id", "source", "credential", "from_address", "from_header", "subject",
        "to_addresses", "cc_addresses", "bcc_count", "tags", "metadata", "template_ref", "body_size_bytes",
        "has_attachments", "status", "bounce_type", "queued_at", "delivered_at", "bounced_at", "expires_at", "body_erased_at",
    )
    inlines = [RecipientInline]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("body")

    def has_add_permission(self, request):
        return False


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ("started_at", "duration_ms", "mx_host", "remote_ip", "response_code", "enhanced_status", "response_text", "outcome")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Recipient)
class RecipientAdmin(admin.ModelAdmin):
    list_display = ("email", "tenant", "status", "attempts", "next_attempt_at", "last_response_code", "domain")
    list_filter = ("status", "kind", "bounce_type")
    search_fields = ("email", "domain", "message__message_id")
    list_select_related = ("tenant",)
    raw_id_fields = ("message",)
    exclude = ("captured_message",)
    readonly_fields = (
        "tenant", "message", "email", "domain", "kind", "attempts", "lease_until", "enqueued_at", "last_response_code",
        "last_enhanced_status", "last_response_text", "bounce_class", "bounce_type", "delivered_at", "bounced_at", "failed_at",
    )
    inlines = [DeliveryAttemptInline]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("captured_message")

    def has_add_permission(self, request):
        return False


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ("email", "tenant", "source", "reason", "created_at")
    list_filter = ("source",)
    search_fields = ("email",)
    list_select_related = ("tenant",)
    raw_id_fields = ("tenant", "source_message")
    readonly_fields = ("created_at",)


from .delivery import admin as delivery_admin  # noqa: E402,F401  (the global delivery queue)
from .bounces import admin as bounces_admin  # noqa: E402,F401  (inbound bounce / complaint reports)
