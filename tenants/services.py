"""Everything that changes users, tenants and credentials."""
import hashlib
import hmac
import secrets

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from dispatch_site import hot_reads
from dispatch_site.errors import Conflict, NotFound, ValidationFailed

from .models import Credential, Plan, Tenant, User

CREDENTIAL_SECRET_PREFIX = "dp_sk_"

DEFAULT_PLANS = [
    # slug, name, monthly quota, per-minute rate, retention days, overage allowed, price per 1,000
    ("free", "Free", 3_000, 60, 7, False, "0.00"),
    ("starter", "Starter", 50_000, 600, 30, True, "0.80"),
    ("pro", "Pro", 250_000, 3_000, 45, True, "0.60"),
]


def plans_seed():
    """Create the default plans if missing; never overwrite an operator's edits."""
    for order, (slug, name, quota, rate, retention, overage, price) in enumerate(DEFAULT_PLANS):
        Plan.objects.get_or_create(
            slug=slug,
            defaults=dict(
                name=name, monthly_quota=quota, rate_limit_per_minute=rate, log_retention_days=retention,
                overage_allowed=overage, overage_price_per_1000=price, sort_order=order,
            ),
        )


def user_register(*, email, password, source_ip=None):
    """A new portal/API user. `source_ip`: the client's address, for the per-IP sign-up limit
    (429 past DISPATCH_SIGNUP_LIMIT_PER_IP attempts in the window)."""
    if source_ip is not None:
        from dispatch_site.api.throttling import count_signup

        count_signup(source_ip)
    email = (email or "").strip().lower()
    user = User(email=email)
    try:
        password_validation.validate_password(password, user=user)
    except DjangoValidationError as exc:
        raise ValidationFailed(" ".join(exc.messages), details={"password": exc.messages}) from None
    if User.objects.filter(email__iexact=email).exists():
        raise Conflict("A user with this email already exists.", code="EMAIL_TAKEN")
    try:
        with transaction.atomic():
            return User.objects.create_user(email=email, password=password)
    except IntegrityError:
        raise Conflict("A user with this email already exists.", code="EMAIL_TAKEN") from None


def user_refresh_tokens_revoke(*, user):
    """Blacklist every unexpired refresh token issued to `user` (their access tokens expire
    within JWT_ACCESS_MINUTES)."""
    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

    live = OutstandingToken.objects.filter(user=user, expires_at__gt=timezone.now(), blacklistedtoken__isnull=True)
    BlacklistedToken.objects.bulk_create([BlacklistedToken(token=token) for token in live], ignore_conflicts=True)


def _plan_by_slug_or_id(plan_ref):
    plan = Plan.objects.filter(slug=str(plan_ref)).first()
    if plan is None:
        try:
            plan = Plan.objects.filter(pk=plan_ref).first()
        except (DjangoValidationError, ValueError):
            plan = None
    if plan is None or not plan.is_public:
        raise ValidationFailed("Unknown plan.", details={"plan": ["unknown plan"]})
    return plan


def tenant_create(*, owner, name, plan):
    return Tenant.objects.create(owner=owner, name=name, plan=_plan_by_slug_or_id(plan))


def tenant_update(*, tenant, name=None, overage_enabled=None):
    if overage_enabled and not tenant.plan.overage_allowed:
        raise ValidationFailed(
            f"The {tenant.plan.name} plan does not allow overage; upgrade the plan.",
            details={"overage_enabled": ["not allowed on this plan"]},
        )
    fields = ["updated_at"]
    if name is not None:
        tenant.name = name
        fields.append("name")
    if overage_enabled is not None:
        tenant.overage_enabled = overage_enabled
        fields.append("overage_enabled")
    tenant.save(update_fields=fields)
    return tenant


def tenant_set_status(*, tenant, status, reason=""):
    """Operators (admin) and the compliance guard change a tenant's status here."""
    if status not in Tenant.Status.values:
        raise ValidationFailed(f"Unknown status {status!r}.")
    tenant.status = status
    tenant.status_reason = reason
    tenant.save(update_fields=["status", "status_reason", "updated_at"])
    return tenant


def secret_digest(secret):
    return hashlib.sha256(secret.encode()).hexdigest()


def credential_username(credential):
    return f"{credential.name}@{settings.DISPATCH_HOSTNAME}"


def credential_create(*, tenant, label):
    """Returns (credential, password). The password exists only in this return value."""
    password = CREDENTIAL_SECRET_PREFIX + secrets.token_urlsafe(32)
    base = slugify(tenant.name)[:24].strip("-") or "tenant"
    for _ in range(5):
        name = f"{base}-{secrets.token_hex(4)}"
        try:
            with transaction.atomic():
                credential = Credential.objects.create(
                    tenant=tenant, name=name, label=label, secret_digest=secret_digest(password)
                )
            return credential, password
        except IntegrityError:
            continue
    raise Conflict("Could not allocate a credential name, try again.")


def credential_revoke(*, tenant, credential_id):
    updated = Credential.objects.for_tenant(tenant).filter(pk=credential_id, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if not updated and not Credential.objects.for_tenant(tenant).filter(pk=credential_id).exists():
        raise NotFound("Credential not found.", code="CREDENTIAL_NOT_FOUND")


def credential_authenticate(*, username, password):
    """The credential for `username`/`password`, or None. Revoked credentials are returned
    (callers answer 'revoked' distinctly); a wrong password never is. Constant-time compare."""
    if not username or not password:
        return None
    name, _, host = username.rpartition("@")
    if not name:
        name, host = host, ""
    if host and host.lower() != settings.DISPATCH_HOSTNAME.lower():
        return None
    credential = hot_reads.credential_with_tenant_and_plan(name)
    if credential is None:
        # Spend the same hashing work so timing does not reveal which usernames exist.
        hmac.compare_digest(secret_digest(password), "0" * 64)
        return None
    if not hmac.compare_digest(secret_digest(password), credential.secret_digest):
        return None
    return credential


def credential_touch(credential):
    """Record use at most once a minute (avoids a write on every request)."""
    now = timezone.now()
    if credential.last_used_at is None or (now - credential.last_used_at).total_seconds() > 60:
        Credential.objects.filter(pk=credential.pk).update(last_used_at=now)
        credential.last_used_at = now
