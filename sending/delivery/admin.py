"""The global delivery queue for operators: every tenant's queued, sending and deferred
recipients, with "retry now" and "fail" actions."""
from django.contrib import admin, messages

from sending.models import QueuedRecipient, Recipient

from . import selectors, services

_WAITING = [Recipient.Status.QUEUED, Recipient.Status.SENDING, Recipient.Status.DEFERRED]


@admin.register(QueuedRecipient)
class DeliveryQueueAdmin(admin.ModelAdmin):
    list_display = ["email", "status", "attempts", "next_attempt_at", "lease_until", "last_response", "tenant", "message_id"]
    list_filter = ["status"]
    search_fields = ["email", "domain", "message__message_id"]
    ordering = ["next_attempt_at"]
    list_select_related = ["tenant"]
    actions = ["retry_now", "fail"]
    readonly_fields = [f.name for f in Recipient._meta.fields if f.name != "captured_message"]
    exclude = ["captured_message"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(status__in=_WAITING)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="last response")
    def last_response(self, obj):
        return " ".join(str(p) for p in (obj.last_response_code, obj.last_enhanced_status, obj.last_response_text) if p)[:120]

    def changelist_view(self, request, extra_context=None):
        summary = selectors.queue_summary()
        self.message_user(
            request,
            "pending {pending} · sending {sending} · deferred {deferred} · next retry {next_retry_at} · "
            "oldest pending {oldest_pending_age_seconds} s".format(**summary),
            messages.INFO,
        )
        return super().changelist_view(request, extra_context)

    @admin.action(description="Retry now", permissions=["view"])
    def retry_now(self, request, queryset):
        count = services.recipients_retry_now(recipient_ids=list(queryset.values_list("id", flat=True)))
        self.message_user(request, f"{count} recipient(s) will be retried now.", messages.SUCCESS)

    @admin.action(description="Fail (stop retrying)", permissions=["view"])
    def fail(self, request, queryset):
        count = services.recipients_fail(recipient_ids=list(queryset.values_list("id", flat=True)))
        self.message_user(request, f"{count} recipient(s) failed.", messages.SUCCESS)
