"""Operator views. Operators see metadata; a message body only on purpose, through the
"View body" page, and every such viewing is recorded."""
import logging

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path

from dispatch_site.errors import DispatchError

from . import selectors
from .models import DeliveryAttempt, Message, Recipient, Suppression
from .suppressions import suppression_add, suppression_key

audit_log = logging.getLogger("dispatch.audit")


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

    # --- the body: only on purpose, and every viewing is recorded ------------------------------
    change_form_template = "admin/sending/message/change_form.html"

    def get_urls(self):
        body = self.admin_site.admin_view(self.body_view)
        return [path("<uuid:message_id>/body/", body, name="sending_message_body")] + super().get_urls()

    def body_view(self, request, message_id):
        """GET asks for confirmation; POST shows the body (headers, text, sandboxed HTML) and
        records who viewed which message: in its admin history and in the "dispatch.audit" log."""
        message = get_object_or_404(Message, pk=message_id)
        if not self.has_view_permission(request, message):
            raise PermissionDenied
        context = {**self.admin_site.each_context(request), "opts": self.opts, "original": message,
                   "title": f"Body of message {message.message_id}"}
        if request.method == "POST":
            self.log_change(request, message, "Viewed the message body.")
            audit_log.info("operator %s viewed the body of message %s (tenant %s)", request.user, message.pk,
                           message.tenant_id)
            context["content"] = selectors.message_content(message)
        return TemplateResponse(request, "admin/sending/message/body.html", context)


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


class SuppressionAdminForm(forms.ModelForm):
    class Meta:
        model = Suppression
        fields = "__all__"

    def clean_email(self):
        try:
            return suppression_key(self.cleaned_data["email"])
        except DispatchError as exc:
            raise forms.ValidationError(exc.message) from None


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    form = SuppressionAdminForm
    list_display = ("email", "tenant", "source", "reason", "created_at")
    list_filter = ("source",)
    search_fields = ("email",)
    list_select_related = ("tenant",)
    raw_id_fields = ("tenant", "source_message")
    readonly_fields = ("created_at",)

    def get_readonly_fields(self, request, obj=None):
        # An address is added through the service (validated, stored lower-case); it is not edited later.
        return self.readonly_fields + (("tenant", "email") if obj is not None else ())

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        suppression, _ = suppression_add(tenant=obj.tenant, email=obj.email, reason=obj.reason, source=obj.source,
                                         bounce_class=obj.bounce_class, feedback_type=obj.feedback_type,
                                         source_message=obj.source_message)
        obj.pk, obj.email = suppression.pk, suppression.email


from .delivery import admin as delivery_admin  # noqa: E402,F401  (the global delivery queue)
from .bounces import admin as bounces_admin  # noqa: E402,F401  (inbound bounce / complaint reports)
