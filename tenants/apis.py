import re
from datetime import date

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from dispatch_site.api import throttling
from dispatch_site.api.responses import created, ok, timestamp
from dispatch_site.api.views import TenantScopedAPIView, is_credential
from dispatch_site.errors import PermissionDenied, ValidationFailed

from . import ratelimit, selectors, services
from .models import Credential, User


def validated(serializer_class, data):
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        from dispatch_site.api.exceptions import _first_message

        raise ValidationFailed(_first_message(serializer.errors), details=serializer.errors)
    return serializer.validated_data


# --- auth --------------------------------------------------------------------------------------
class RegisterInput(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=256, trim_whitespace=False)


class RegisterView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(request=RegisterInput, responses={201: dict}, tags=["auth"])
    def post(self, request):
        data = validated(RegisterInput, request.data)
        user = services.user_register(email=data["email"], password=data["password"],
                                      source_ip=throttling.client_ip(request))
        return created({"id": str(user.id), "email": user.email}, message="Account created.")


class TokenView(TokenObtainPairView):
    authentication_classes = []

    def post(self, request, *args, **kwargs):
        # 429 up front; the failures themselves are counted by the authentication backend.
        throttling.LoginAttempt(request, request.data.get("email") if isinstance(request.data, dict) else None).check()
        return super().post(request, *args, **kwargs)


class SingleUseRefreshToken(RefreshToken):
    """A refresh token is exchanged for a new pair once. simplejwt checks the blacklist, then adds
    the token with get_or_create, so two refreshes racing with one (stolen) token both got a new
    pair; the blacklist row is unique, so the one that did not create it is refused here."""

    def blacklist(self):
        entry, created = super().blacklist()
        if not created:
            raise TokenError("Token is blacklisted")
        return entry, created


class TokenRefreshInput(TokenRefreshSerializer):
    token_class = SingleUseRefreshToken

    def validate(self, attrs):
        try:
            return super().validate(attrs)
        except User.DoesNotExist:  # a token that outlived its user
            raise AuthenticationFailed(self.error_messages["no_active_account"], "no_active_account") from None


class TokenRefresh(TokenRefreshView):
    authentication_classes = []
    serializer_class = TokenRefreshInput


# --- plans -------------------------------------------------------------------------------------
def plan_data(plan):
    return {
        "id": str(plan.id),
        "name": plan.name,
        "slug": plan.slug,
        "monthly_quota": plan.monthly_quota,
        "rate_limit_per_minute": plan.rate_limit_per_minute,
        "log_retention_days": plan.log_retention_days,
        "overage_allowed": plan.overage_allowed,
        "overage_price_per_1000": str(plan.overage_price_per_1000),
    }


class PlanListView(APIView):
    @extend_schema(responses={200: dict}, tags=["plans"])
    def get(self, request):
        return ok([plan_data(p) for p in selectors.public_plans()])


# --- tenants -----------------------------------------------------------------------------------
def tenant_data(tenant, *, with_usage=False):
    data = {
        "id": str(tenant.id),
        "tenant_name": tenant.name,
        "plan": plan_data(tenant.plan),
        "status": tenant.status,
        "overage_enabled": tenant.overage_enabled,
        "created_at": timestamp(tenant.created_at),
    }
    if with_usage:
        data["usage"] = selectors.usage_summary(tenant)
    return data


class TenantCreateInput(serializers.Serializer):
    tenant_name = serializers.CharField(max_length=200)
    plan = serializers.CharField(max_length=64, required=False, default="free")


class TenantUpdateInput(serializers.Serializer):
    tenant_name = serializers.CharField(max_length=200, required=False)
    overage_enabled = serializers.BooleanField(required=False)


class TenantListView(APIView):
    @extend_schema(responses={200: dict}, tags=["tenants"])
    def get(self, request):
        if is_credential(request):
            return ok([tenant_data(request.user.tenant)])
        return ok([tenant_data(t) for t in selectors.tenants_of_user(request.user)])

    @extend_schema(request=TenantCreateInput, responses={201: dict}, tags=["tenants"])
    def post(self, request):
        if is_credential(request):
            raise PermissionDenied("Creating tenants needs a user session (Bearer JWT).")
        data = validated(TenantCreateInput, request.data)
        tenant = services.tenant_create(owner=request.user, name=data["tenant_name"], plan=data["plan"])
        return created(tenant_data(tenant, with_usage=True), message="Tenant created.")


class TenantDetailView(TenantScopedAPIView):
    @extend_schema(responses={200: dict}, tags=["tenants"])
    def get(self, request, tenant_id):
        return ok(tenant_data(self.tenant, with_usage=True))

    @extend_schema(request=TenantUpdateInput, responses={200: dict}, tags=["tenants"])
    def put(self, request, tenant_id):
        if is_credential(request):
            raise PermissionDenied("Changing tenant settings needs a user session (Bearer JWT).")
        data = validated(TenantUpdateInput, request.data)
        tenant = services.tenant_update(
            tenant=self.tenant, name=data.get("tenant_name"), overage_enabled=data.get("overage_enabled")
        )
        return ok(tenant_data(tenant, with_usage=True), message="Tenant updated.")

    patch = put


# --- usage ---------------------------------------------------------------------------------------
_PERIOD_RE = re.compile(r"^(\d{4})-(\d{2})$")


def parse_period(value):
    """`?period=YYYY-MM` as the first day of that month; None when absent."""
    if value is None:
        return None
    match = _PERIOD_RE.match(value)
    if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1970:
        raise ValidationFailed("period: expected a month as YYYY-MM, e.g. 2026-03", details={"period": ["expected YYYY-MM"]})
    return date(int(match.group(1)), int(match.group(2)), 1)


class UsageView(TenantScopedAPIView):
    @extend_schema(responses={200: dict}, tags=["usage"])
    def get(self, request, tenant_id):
        period = parse_period(request.query_params.get("period"))
        return ok(selectors.usage_summary(self.tenant, period))


class RateLimitHeaders:
    """For the send views: RateLimit-Limit / -Remaining / -Reset on every response of a
    resolved tenant, success or error (tenants/ratelimit.py)."""

    def dispatch(self, request, *args, **kwargs):
        ratelimit.forget_last_state()  # whatever an earlier request on this thread left behind
        return super().dispatch(request, *args, **kwargs)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if getattr(self, "tenant", None) is not None:
            for name, value in ratelimit.response_headers(tenant=self.tenant).items():
                response[name] = value
        return response


# --- credentials ---------------------------------------------------------------------------------
def credential_data(credential):
    return {
        "id": str(credential.id),
        "username": services.credential_username(credential),
        "label": credential.label,
        "created_at": timestamp(credential.created_at),
        "last_used_at": timestamp(credential.last_used_at),
        "revoked": credential.is_revoked,
        "revoked_at": timestamp(credential.revoked_at),
    }


class CredentialCreateInput(serializers.Serializer):
    label = serializers.CharField(max_length=200)


class CredentialListView(TenantScopedAPIView):
    # A credential must not mint or list other credentials: that would outlive its revocation.
    allow_credential_auth = False

    @extend_schema(responses={200: dict}, tags=["credentials"])
    def get(self, request, tenant_id):
        return ok([credential_data(c) for c in Credential.objects.for_tenant(self.tenant)])

    @extend_schema(request=CredentialCreateInput, responses={201: dict}, tags=["credentials"])
    def post(self, request, tenant_id):
        data = validated(CredentialCreateInput, request.data)
        credential, password = services.credential_create(tenant=self.tenant, label=data["label"])
        body = credential_data(credential)
        body.update(
            password=password,
            smtp_host=settings.DISPATCH_HOSTNAME,
            smtp_port=(settings.DISPATCH_SMTP_STARTTLS_PORTS or [2525])[0],
            note="Save this password now - it will not be shown again.",
        )
        return created(body, message="Credential created.")


class CredentialDetailView(TenantScopedAPIView):
    allow_credential_auth = False

    @extend_schema(responses={200: dict}, tags=["credentials"])
    def delete(self, request, tenant_id, credential_id):
        services.credential_revoke(tenant=self.tenant, credential_id=credential_id)
        return ok(None, message="Credential revoked.")
