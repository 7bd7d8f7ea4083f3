"""Base views. Every tenant-scoped endpoint inherits TenantScopedAPIView, which resolves
`self.tenant` from the URL and the authenticated principal before any handler runs."""
from rest_framework.views import APIView

from dispatch_site.errors import CredentialMismatch, NotFound, PermissionDenied, TenantNotActive

from .authentication import CredentialPrincipal


def is_credential(request):
    return isinstance(request.user, CredentialPrincipal)


def resolve_tenant(request, tenant_id, *, allow_credential=True):
    """The tenant named in the URL, if this principal may act on it.

    JWT user: only tenants they own; anything else is 404 (existence is not revealed).
    Credential: only its own tenant (another id -> 403 CREDENTIAL_MISMATCH, per the spec),
    and only while that tenant is active.
    """
    from tenants.models import Tenant

    if is_credential(request):
        credential = request.user.credential
        if str(credential.tenant_id) != str(tenant_id):
            raise CredentialMismatch()
        if not allow_credential:
            raise PermissionDenied("This endpoint needs a user session (Bearer JWT), not a credential.")
        if not credential.tenant.is_active:
            raise TenantNotActive(f"Tenant is {credential.tenant.status}.")
        return credential.tenant
    tenant = Tenant.objects.select_related("plan").filter(pk=tenant_id, owner=request.user).first()
    if tenant is None:
        raise NotFound("Tenant not found.", code="TENANT_NOT_FOUND")
    return tenant


class TenantScopedAPIView(APIView):
    """Subclasses read `self.tenant`; they cannot skip or replace the resolution."""

    allow_credential_auth = True
    tenant = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "initial" in cls.__dict__:
            raise TypeError(f"{cls.__name__} must not override initial(): tenant resolution lives there")

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.tenant = resolve_tenant(request, kwargs["tenant_id"], allow_credential=self.allow_credential_auth)


class UserAPIView(APIView):
    """Endpoints that belong to a person (JWT), never to a credential."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if is_credential(request):
            raise PermissionDenied("This endpoint needs a user session (Bearer JWT), not a credential.")
