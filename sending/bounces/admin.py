"""Inbound reports for operators: metadata and processing outcome (never the raw message)."""
from django.contrib import admin, messages

from sending.models import InboundReport

from . import ingest


@admin.register(InboundReport)
class InboundReportAdmin(admin.ModelAdmin):
    list_display = ["received_at", "kind", "envelope_to", "envelope_from", "remote_ip", "tenant", "processed_at", "attempts"]
    list_filter = ["kind", ("processed_at", admin.EmptyFieldListFilter)]
    search_fields = ["envelope_to", "envelope_from", "remote_ip", "id"]
    date_hierarchy = "received_at"
    list_select_related = ["tenant"]
    exclude = ["raw"]
    readonly_fields = [f.name for f in InboundReport._meta.fields if f.name != "raw"]
    actions = ["process_now"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("raw")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Process now (unprocessed reports)")
    def process_now(self, request, queryset):
        ids = list(queryset.filter(processed_at__isnull=True).values_list("id", flat=True))
        for report_id in ids:
            ingest.report_process(report_id=report_id)
        self.message_user(request, f"Processed {len(ids)} report(s).", messages.SUCCESS)
