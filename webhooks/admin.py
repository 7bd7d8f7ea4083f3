from django.contrib import admin, messages
from django.db import transaction

from dispatch_site.errors import Conflict

from . import services
from .models import Delivery, Endpoint, Event


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    list_display = ["url", "tenant", "enabled", "disabled_reason", "failing_since", "created_at"]
    list_filter = ["enabled"]
    search_fields = ["url", "tenant__name", "id"]
    # The secret is never shown (nor editable) here: it is encrypted and belongs to the tenant.
    exclude = ["secret_encrypted"]
    readonly_fields = ["tenant", "url", "events", "enabled", "disabled_reason", "disabled_at", "failing_since",
                       "created_at", "updated_at"]
    actions = ["disable", "enable"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Disable selected endpoints")
    def disable(self, request, queryset):
        for endpoint in queryset.filter(enabled=True):
            services.endpoint_disable(endpoint=endpoint, reason=f"Disabled by operator {request.user}.")
        self.message_user(request, "Endpoints disabled.", messages.SUCCESS)

    @admin.action(description="Enable selected endpoints")
    def enable(self, request, queryset):
        for endpoint in queryset.filter(enabled=False):
            services.endpoint_update(tenant=endpoint.tenant, endpoint_id=endpoint.pk, enabled=True)
        self.message_user(request, "Endpoints enabled.", messages.SUCCESS)


class FailedFilter(admin.SimpleListFilter):
    title = "outcome"
    parameter_name = "outcome"

    def lookups(self, request, model_admin):
        return [("failed", "Failed or exhausted")]

    def queryset(self, request, queryset):
        if self.value() == "failed":
            return queryset.filter(status__in=[Delivery.Status.FAILED, Delivery.Status.EXHAUSTED])
        return queryset


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["webhook_id", "event_type", "endpoint", "tenant", "status", "attempts", "last_response_code",
                    "next_attempt_at", "created_at"]
    list_filter = [FailedFilter, "status"]
    search_fields = ["webhook_id", "endpoint__url", "id"]
    list_select_related = ["event", "endpoint", "tenant"]
    readonly_fields = [f.name for f in Delivery._meta.fields]
    actions = ["replay"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="event")
    def event_type(self, delivery):
        return delivery.event.type

    @admin.action(description="Replay selected deliveries now")
    def replay(self, request, queryset):
        replayed = skipped = 0
        for delivery in queryset.select_related("endpoint"):
            if not delivery.endpoint.enabled:
                skipped += 1
                continue
            try:
                with transaction.atomic():
                    services.delivery_requeue(delivery=delivery)
                replayed += 1
            except Conflict:
                skipped += 1
        self.message_user(request, f"{replayed} delivery(ies) queued again, {skipped} skipped (endpoint disabled "
                                   "or attempt in flight).", messages.SUCCESS)


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["id", "type", "tenant", "created_at"]
    list_filter = ["type"]
    search_fields = ["id", "tenant__name"]
    readonly_fields = ["id", "tenant", "type", "payload", "created_at"]

    def has_add_permission(self, request):
        return False
