"""Shared plumbing for portal pages: tenant resolution (only the logged-in user's tenants,
anything else 404), the tenant side navigation, and showing service errors in words."""
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.paginator import Paginator
from django.http import Http404
from django.urls import reverse
from django.views import View

from dispatch_site.errors import DispatchError, NotFound
from tenants.models import Tenant

TENANT_NAV = [
    ("Dashboard", "portal:dashboard"),
    ("Domains", "portal:domains"),
    ("Credentials", "portal:credentials"),
    ("Templates", "portal:templates"),
    ("Email log", "portal:emails"),
    ("Suppressions", "portal:suppressions"),
    ("Webhooks", "portal:webhooks"),
    ("Settings", "portal:tenant_settings"),
]


class TenantPage(LoginRequiredMixin, View):
    """Base for every page under /portal/t/<tenant_id>/: sets self.tenant or answers 404."""

    nav_name = None

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        self.tenant = Tenant.objects.select_related("plan").filter(pk=kwargs["tenant_id"], owner=request.user).first()
        if self.tenant is None:
            raise Http404("Tenant not found")
        return super().dispatch(request, *args, **kwargs)

    def context(self, **extra):
        nav = [{"label": label, "url": reverse(name, args=[self.tenant.id]), "current": name == self.nav_name}
               for label, name in TENANT_NAV]
        return {"tenant": self.tenant, "tenant_nav": nav, **extra}


def run_service(request, func, *args, success=None, **kwargs):
    """Call a service; on a DispatchError show its message and return None."""
    try:
        result = func(*args, **kwargs)
    except DispatchError as exc:
        messages.error(request, exc.message)
        return None
    if success:
        messages.success(request, success)
    return result if result is not None else True


def object_or_404(selector, **kwargs):
    """Load the object named in the URL through its app's selector; NotFound (another tenant's
    object, or none) becomes the portal's 404 page."""
    try:
        return selector(**kwargs)
    except NotFound:
        raise Http404("Not found") from None


def page_of(request, queryset, per_page=50):
    """One page of `queryset` (?page=N; out-of-range numbers give the last page)."""
    return Paginator(queryset, per_page).get_page(request.GET.get("page"))
