import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from tenants.models import TenantOwnedModel


class Domain(TenantOwnedModel):
    """A sending domain of one tenant.

    Lifecycle: pending -> verified (ownership TXT seen) -> warning (ownership TXT gone at a
    re-check; still usable for DISPATCH_DOMAIN_GRACE_HOURS) -> failed (not usable). Any check that
    sees the ownership TXT again brings it back to verified.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        VERIFIED = "verified"
        WARNING = "warning"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=253, help_text="Lower-case ASCII (punycode for IDN).")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    verification_token = models.CharField(max_length=64)
    dkim_selector = models.CharField(max_length=63)
    dkim_public_key = models.TextField(help_text="Base64 DER SubjectPublicKeyInfo, as published in DNS.")
    dkim_private_key_encrypted = models.BinaryField(help_text="PEM, AES-GCM encrypted (dkim:<tenant>:<id>).")
    verified_at = models.DateTimeField(null=True, blank=True)
    warning_since = models.DateTimeField(null=True, blank=True, help_text="Ownership record missing since.")
    status_changed_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    next_check_at = models.DateTimeField(null=True, blank=True, db_index=True)
    dns_check = models.JSONField(default=dict, blank=True, help_text="Per-record result of the last check.")
    verified_without_dns = models.BooleanField(
        default=False, help_text="Development demo domain: marked verified without DNS, never re-checked."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="domain_unique_per_tenant"),
            # Tenants sharing a domain publish their DKIM keys side by side under distinct selectors.
            models.UniqueConstraint(fields=["name", "dkim_selector"], name="domain_dkim_selector_unique"),
        ]

    def __str__(self):
        return self.name

    @property
    def unicode_name(self):
        from .validation import to_unicode

        return to_unicode(self.name)

    @property
    def return_path_domain(self):
        return f"{settings.DISPATCH_RETURN_PATH_SUBDOMAIN}.{self.name}"

    @property
    def verification_host(self):
        return f"{settings.DISPATCH_VERIFY_RECORD_PREFIX}.{self.name}"

    @property
    def verification_value(self):
        return f"{settings.DISPATCH_VERIFY_TOKEN_PREFIX}{self.verification_token}"

    @property
    def dkim_host(self):
        return f"{self.dkim_selector}._domainkey.{self.name}"

    @property
    def dkim_private_key_associated_data(self):
        return f"dkim:{self.tenant_id}:{self.id}"

    @property
    def grace_ends_at(self):
        if self.status != self.Status.WARNING or self.warning_since is None:
            return None
        return self.warning_since + timedelta(hours=settings.DISPATCH_DOMAIN_GRACE_HOURS)

    def is_usable(self, now=None):
        """May mail be sent from this domain now? Verified, or in warning within the grace period
        (judged at read time, so a late re-check never extends the grace)."""
        if self.status == self.Status.VERIFIED:
            return True
        if self.status == self.Status.WARNING:
            ends = self.grace_ends_at
            return ends is not None and (now or timezone.now()) < ends
        return False

    def record_status(self, kind):
        """Status of one DNS record ("dkim", "spf", "return_path", ...) at the last check."""
        return self.dns_check.get("records", {}).get(kind, {}).get("status", "unchecked")

    @property
    def return_path_verified(self):
        return self.record_status("return_path") == "verified"


class DnsProvider(models.Model):
    """A DNS hosting account a user connected for automatic DNS setup. Belongs to the user (not a
    tenant): usable for the domains of every tenant they own. Credentials are stored encrypted."""

    class Provider(models.TextChoices):
        CLOUDFLARE = "cloudflare", "Cloudflare"
        ROUTE53 = "route53", "Amazon Route 53"
        GCP = "gcp", "Google Cloud DNS"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey("tenants.User", on_delete=models.CASCADE, related_name="dns_providers")
    provider = models.CharField(max_length=16, choices=Provider.choices)
    label = models.CharField(max_length=200)
    credentials_encrypted = models.BinaryField(help_text="JSON, AES-GCM encrypted (dnsprovider:<owner>:<id>).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return f"{self.label} ({self.get_provider_display()})"

    @property
    def credentials_associated_data(self):
        return f"dnsprovider:{self.owner_id}:{self.id}"
