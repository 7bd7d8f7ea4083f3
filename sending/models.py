"""Messages, their per-recipient delivery rows, delivery attempts, suppressions and
idempotency keys. The Recipient row is the unit of delivery: workers claim, lease and
update recipients; the Message status is an aggregate kept by
`sending.services.message_refresh_status`."""
import uuid

from django.db import models
from django.db.models.functions import Upper
from django.utils import timezone

from tenants.models import Credential, Tenant, TenantOwnedModel


class Message(TenantOwnedModel):
    class Source(models.TextChoices):
        API = "api"
        SMTP = "smtp"

    class Status(models.TextChoices):
        QUEUED = "queued"
        SENDING = "sending"
        DELIVERED = "delivered"
        DEFERRED = "deferred"
        BOUNCED = "bounced"
        FAILED = "failed"
        PARTIALLY_DELIVERED = "partially_delivered"
        SUPPRESSED = "suppressed"

    class BounceType(models.TextChoices):
        HARD = "hard"
        SOFT = "soft"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Every index is written on each INSERT and on each UPDATE that is not HOT, so a table written
    # per message carries no index another one already serves: the tenant's lookups lead with
    # tenant_id in the composite indexes below (see migration 0009).
    # No database-level foreign keys to the tenant or the credential on the per-message tables
    # (db_constraint=False; Django still cascades deletes): every INSERT checked its key with a
    # SELECT ... FOR KEY SHARE on the ONE tenant row, so all of a tenant's concurrent submissions
    # and deliveries locked the same row (a MultiXact per lock) — measurable PostgreSQL CPU per
    # message. The keys come from the authenticated tenant, never from input (migration 0010).
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False)
    message_id = models.CharField(max_length=255, unique=True, help_text="Message-ID without angle brackets.")
    header_message_id = models.CharField(
        max_length=255, blank=True,
        help_text="The client's own Message-ID header (SMTP), when it differs from message_id; "
        "kept for correlating complaints and bounces that quote the original headers.",
    )
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.API)
    credential = models.ForeignKey(Credential, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                   db_constraint=False)
    from_address = models.CharField(max_length=320, help_text="addr-spec; the domain is lower-cased.")
    from_header = models.CharField(max_length=998, help_text="From as given (display name allowed).")
    subject = models.CharField(max_length=998, blank=True)
    to_addresses = models.JSONField(default=list)
    cc_addresses = models.JSONField(default=list)
    bcc_count = models.PositiveIntegerField(default=0)
    tags = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    template_ref = models.CharField(max_length=200, blank=True, help_text="template_id as given, if any.")
    body = models.BinaryField(null=True, blank=True, editable=False)
    body_size_bytes = models.PositiveIntegerField(default=0)
    has_attachments = models.BooleanField(default=False)
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.QUEUED)
    bounce_type = models.CharField(max_length=8, choices=BounceType.choices, null=True, blank=True)
    queued_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(db_index=True)
    body_erased_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "-queued_at"], name="message_tenant_queued"),
            models.Index(fields=["tenant", "status"], name="message_tenant_status"),
            models.Index(
                fields=["header_message_id"], name="message_header_message_id",
                condition=~models.Q(header_message_id=""),
            ),
        ]

    def __str__(self):
        return self.message_id

    @property
    def body_associated_data(self):
        return f"message:{self.tenant_id}:{self.id}"


class Recipient(models.Model):
    class Kind(models.TextChoices):
        TO = "to"
        CC = "cc"
        BCC = "bcc"

    class Status(models.TextChoices):
        QUEUED = "queued"
        SENDING = "sending"
        DEFERRED = "deferred"
        DELIVERED = "delivered"
        BOUNCED = "bounced"
        FAILED = "failed"
        SUPPRESSED = "suppressed"

    id = models.BigAutoField(primary_key=True)
    # Indexed by recipient_tenant_email_ci, which leads with tenant_id; a recipient row is updated
    # three times on its way out, never as a HOT update, so each spare index costs four writes.
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False)
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="recipients")
    email = models.CharField(max_length=320)
    domain = models.CharField(max_length=255, help_text="Lower-case ASCII (punycode) domain: the batching key.")
    kind = models.CharField(max_length=3, choices=Kind.choices, default=Kind.TO)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)  # indexed by recipient_status_next
    lease_until = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    last_response_code = models.IntegerField(null=True, blank=True)
    last_enhanced_status = models.CharField(max_length=16, blank=True)
    last_response_text = models.CharField(max_length=1000, blank=True)
    bounce_class = models.CharField(max_length=64, blank=True)
    bounce_type = models.CharField(max_length=8, choices=Message.BounceType.choices, null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    captured_message = models.BinaryField(
        null=True, blank=True, editable=False,
        help_text="Capture mode: the finalized, signed copy, AES-GCM encrypted (captured_associated_data).",
    )
    effects_pending = models.BooleanField(
        default=False,
        help_text="Outcome recorded; its attempt row, event and message status not yet (delivery engine).",
    )

    class Meta:
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="recipient_status_next"),
            models.Index(fields=["domain", "status"], name="recipient_domain_status"),
            # Serves email__iexact lookups (log filter by recipient, bounce history): iexact
            # compiles to UPPER(email) = UPPER(%s).
            models.Index("tenant", Upper("email"), name="recipient_tenant_email_ci"),
            models.Index(fields=["lease_until"], condition=models.Q(effects_pending=True), name="recipient_effects_pending"),
        ]

    def __str__(self):
        return f"{self.email} ({self.status})"

    @property
    def captured_associated_data(self):
        return f"recipient:{self.tenant_id}:{self.id}"


class QueuedRecipient(Recipient):
    """Recipients as the operators' global delivery queue (admin: sending/delivery/admin.py)."""

    class Meta:
        proxy = True
        verbose_name = "delivery queue entry"
        verbose_name_plural = "delivery queue"


class DeliveryAttempt(models.Model):
    class Outcome(models.TextChoices):
        DELIVERED = "delivered"
        DEFERRED = "deferred"
        BOUNCED = "bounced"
        FAILED = "failed"

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    recipient = models.ForeignKey(Recipient, on_delete=models.CASCADE, related_name="delivery_attempts")
    started_at = models.DateTimeField(default=timezone.now)
    duration_ms = models.PositiveIntegerField(default=0)
    mx_host = models.CharField(max_length=255, blank=True)
    remote_ip = models.CharField(max_length=45, blank=True)
    response_code = models.IntegerField(null=True, blank=True)
    enhanced_status = models.CharField(max_length=16, blank=True)
    response_text = models.CharField(max_length=1000, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)

    class Meta:
        ordering = ["started_at"]

    def __str__(self):
        return f"{self.recipient_id} {self.outcome} {self.response_code}"


class Suppression(TenantOwnedModel):
    class Source(models.TextChoices):
        MANUAL = "manual"
        BOUNCE = "bounce"
        COMPLAINT = "complaint"
        UNSUBSCRIBE = "unsubscribe"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.CharField(max_length=320, help_text="Stored lower-case.")
    reason = models.TextField(blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.MANUAL)
    bounce_class = models.CharField(max_length=64, blank=True)
    feedback_type = models.CharField(max_length=64, blank=True)
    source_message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["tenant", "email"], name="suppression_unique_per_tenant")]

    def __str__(self):
        return self.email


class IdempotencyKey(TenantOwnedModel):
    """An Idempotency-Key seen on /send: the first request's body hash and response, kept 24 h.
    The unique constraint is what makes concurrent identical requests produce one message."""

    id = models.BigAutoField(primary_key=True)
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    response = models.JSONField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="idempotency_unique_per_tenant")]

    def __str__(self):
        return self.key


class InboundReport(models.Model):
    """A message received by the inbound MX for one of our return-path or feedback addresses
    (DSN, ARF complaint, auto-reply, anything else), stored before it is answered with 250 and
    processed by `sending.bounces.ingest.report_process`. One row per accepted envelope recipient."""

    class Kind(models.TextChoices):
        DSN = "dsn"
        ARF = "arf"
        AUTOREPLY = "autoreply"
        NOT_BOUNCE = "not_bounce"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    received_at = models.DateTimeField(default=timezone.now)
    envelope_from = models.CharField(max_length=320, blank=True)
    envelope_to = models.CharField(max_length=320, help_text="The VERP or feedback address it was sent to.")
    remote_ip = models.CharField(max_length=45, blank=True)
    raw = models.BinaryField(editable=False, help_text="The report as received, AES-GCM encrypted (raw_associated_data).")
    size_bytes = models.PositiveIntegerField(default=0)
    kind = models.CharField(max_length=16, choices=Kind.choices, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    processed_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True)
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="inbound_reports")
    recipient = models.ForeignKey(Recipient, null=True, blank=True, on_delete=models.SET_NULL, related_name="inbound_reports")

    class Meta:
        ordering = ["-received_at"]
        indexes = [
            models.Index(fields=["received_at"], name="inbound_report_unprocessed", condition=models.Q(processed_at__isnull=True)),
            models.Index(fields=["processed_at"], name="inbound_report_processed"),
        ]

    def __str__(self):
        return f"{self.kind or 'unprocessed'} report to {self.envelope_to}"

    @property
    def raw_associated_data(self):
        return f"inbound-report:{self.id}"
