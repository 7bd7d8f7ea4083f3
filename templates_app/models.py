import uuid

from django.core.exceptions import ValidationError
from django.db import models

from tenants.models import TenantOwnedModel

from . import rendering


class Template(TenantOwnedModel):
    """A tenant's reusable email: referenced by id or slug when sending."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, db_index=False, help_text="Unique per tenant; lower-case.")
    subject = models.TextField()
    html_body = models.TextField(blank=True)
    text_body = models.TextField(blank=True)
    # {name: {"default": str | None, "description": str}}: every placeholder of the template plus
    # the variables given explicitly (those keep a default or a description).
    variables = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["tenant", "slug"], name="template_slug_unique_per_tenant")]

    def __str__(self):
        return f"{self.name} ({self.slug})"

    @property
    def variable_defaults(self):
        return {name: spec.get("default") for name, spec in self.variables.items() if spec.get("default") is not None}


class MasterTemplate(models.Model):
    """The operator's HTML wrapper for `use_master_template` sends. Its {{content}} slot receives
    the message html verbatim; {{tenant_name}}, {{subject}}, {{year}} and the message's variables
    are available (escaped). At most one is active (partial unique index)."""

    CONTENT_SLOT = "content"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    html = models.TextField(help_text="Must contain {{content}}. Also available: {{tenant_name}}, {{subject}}, {{year}}.")
    is_active = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-is_active", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=models.Q(is_active=True), name="master_template_one_active"
            )
        ]

    def __str__(self):
        return f"{self.name}{' (active)' if self.is_active else ''}"

    def clean(self):
        if len(self.html) > rendering.MAX_TEMPLATE_CHARS:
            raise ValidationError({"html": f"At most {rendering.MAX_TEMPLATE_CHARS:,} characters."})
        found = rendering.problems(self.html)
        if found:
            raise ValidationError({"html": found})
        if self.CONTENT_SLOT not in rendering.variable_names(self.html):
            raise ValidationError({"html": "The master template needs a {{content}} slot for the message."})
