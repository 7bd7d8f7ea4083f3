import uuid

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.utils import timezone


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email, password=None, **extra):
        if not email:
            raise ValueError("email is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email, password=None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who logs in (portal, JWT). Owns tenants; operators are is_staff users."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(unique=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = []

    def __str__(self):
        return self.email

    def save(self, *args, **kwargs):
        # set_password() leaves the raw password in _password until the save (a hash upgrade
        # at login clears it first). Like Django ending the person's other sessions, a new
        # password ends the refresh tokens issued before: wherever it is changed (portal,
        # admin, changepassword), a stolen refresh token stops rotating.
        password_changed = self._password is not None and not self._state.adding
        super().save(*args, **kwargs)
        if password_changed:
            from .services import user_refresh_tokens_revoke

            user_refresh_tokens_revoke(user=self)


class Plan(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=50, unique=True)
    monthly_quota = models.PositiveIntegerField(help_text="Recipients accepted per calendar month (UTC).")
    rate_limit_per_minute = models.PositiveIntegerField(help_text="Recipients accepted per minute.")
    log_retention_days = models.PositiveIntegerField(default=14)
    overage_allowed = models.BooleanField(default=False)
    overage_price_per_1000 = models.DecimalField(max_digits=8, decimal_places=2, default=0)
    is_public = models.BooleanField(default=True, help_text="Listed on /plans and selectable by users.")
    sort_order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["sort_order", "monthly_quota"]

    def __str__(self):
        return self.name


class Tenant(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        SUSPENDED = "suspended"
        BLOCKED = "blocked"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(User, on_delete=models.PROTECT, related_name="tenants")
    name = models.CharField(max_length=200)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="tenants")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    status_reason = models.CharField(max_length=300, blank=True)
    overage_enabled = models.BooleanField(default=False)
    # Set by the compliance guard (tenants/compliance.py) when bounce or complaint rates cross
    # the warning thresholds; operators filter on it in the admin.
    compliance_flagged_at = models.DateTimeField(null=True, blank=True, db_index=True)
    compliance_reason = models.CharField(max_length=300, blank=True)
    # An operator reviewed the tenant's rates: no automatic suspension for the rest of that month.
    compliance_reviewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return self.name

    @property
    def is_active(self):
        return self.status == self.Status.ACTIVE


class TenantScopedQuerySet(models.QuerySet):
    def for_tenant(self, tenant):
        if tenant is None:
            raise ValueError("for_tenant() needs a tenant")
        return self.filter(tenant=tenant)


TenantScopedManager = models.Manager.from_queryset(TenantScopedQuerySet)


class TenantOwnedModel(models.Model):
    """Base for every tenant-owned row. API code reads through `Model.objects.for_tenant(t)`;
    unscoped access is for workers and the admin only."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")

    objects = TenantScopedManager()

    class Meta:
        abstract = True


class Credential(TenantOwnedModel):
    """An API/SMTP credential. The secret is shown once; only its SHA-256 digest is kept
    (32 random bytes need no slow hash, and a slow one would cap every API call)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=64, unique=True, help_text="Local part of the username.")
    label = models.CharField(max_length=200)
    secret_digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return self.name

    @property
    def is_revoked(self):
        return self.revoked_at is not None


class UsageCounter(TenantOwnedModel):
    """Per tenant per calendar month (UTC). Incremented atomically on the hot path so
    usage is cheap to read and exact under concurrency."""

    period = models.DateField(help_text="First day of the month, UTC.")
    emails_sent = models.PositiveBigIntegerField(default=0)
    overage = models.PositiveBigIntegerField(default=0)
    delivered = models.PositiveBigIntegerField(default=0)
    hard_bounce = models.PositiveBigIntegerField(default=0)
    soft_bounce = models.PositiveBigIntegerField(default=0)
    complaint = models.PositiveBigIntegerField(default=0)
    failed = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "period"], name="usage_one_row_per_period")]
