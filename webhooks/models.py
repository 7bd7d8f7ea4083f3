import uuid

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from tenants.models import Tenant, TenantOwnedModel

EVENT_TYPES = (
    "sent",
    "delivered",
    "bounced",
    "complained",
    "deferred",
    "failed",
    "suppressed",
    "unsubscribed",
    "domain.verified",
    "domain.failed",
)
TEST_EVENT_TYPE = "webhook.test"


class Endpoint(TenantOwnedModel):
    """A tenant's webhook receiver. The signing secret is encrypted at rest, bound to this row."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    url = models.CharField(max_length=2048)
    events = models.JSONField(default=list, help_text="Event types this endpoint receives.")
    secret_encrypted = models.BinaryField()
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    failing_since = models.DateTimeField(
        null=True, blank=True, help_text="First failed attempt since the last success (null when healthy)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return self.url

    @property
    def secret_associated_data(self):
        return f"webhook:{self.tenant_id}:{self.id}"


class Event(TenantOwnedModel):
    """One event as it happened, stored before any delivery is attempted."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # db_index: see indexes; db_constraint: as on sending.Message (one tenant row locked per INSERT)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False)
    type = models.CharField(max_length=40)
    payload = models.JSONField(encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="webhooks_event_tenant_created")]

    def __str__(self):
        return f"{self.type} {self.id}"

    @property
    def webhook_id(self):
        """The Standard Webhooks message id: the same for every attempt and replay."""
        return f"msg_{self.id.hex}"


class Delivery(TenantOwnedModel):
    """One event to one endpoint. The database holds the retry schedule (next_attempt_at);
    the broker only carries ids."""

    class Status(models.TextChoices):
        PENDING = "pending"  # not attempted yet (or replay requested)
        SUCCEEDED = "succeeded"
        FAILED = "failed"  # last attempt failed; retried at next_attempt_at unless that is null
        EXHAUSTED = "exhausted"  # every attempt of the schedule failed

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    webhook_id = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, default=timezone.now, db_index=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_response_code = models.PositiveIntegerField(null=True, blank=True)
    last_response_body = models.TextField(blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["event", "endpoint"], name="webhooks_one_delivery_per_endpoint")]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhooks_delivery_due"),
            models.Index(fields=["endpoint", "-created_at"], name="webhooks_delivery_endpoint"),
        ]
        verbose_name_plural = "deliveries"

    def __str__(self):
        return f"{self.webhook_id} -> {self.endpoint_id} ({self.status})"
