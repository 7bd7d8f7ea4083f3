from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from dispatch_site.api import schema as _openapi_security  # noqa: F401  (registers the auth schemes)

from sending.unsubscribe_views import one_click_unsubscribe
from tenants.admin import admin_password_change

handler400 = "dispatch_site.api.exceptions.json_400"
handler403 = "dispatch_site.api.exceptions.json_403"
handler404 = "dispatch_site.api.exceptions.json_404"
handler500 = "dispatch_site.api.exceptions.json_500"


def healthz(request):
    return JsonResponse({"status": "ok"})


# Django tries routes in order on every request: the API comes first, and sending's routes first
# within it, because /send is the hot path (resolving it took ~35 us, now ~16). No two routes
# here can match the same path, so the order changes nothing else.
api_v1 = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("", include("sending.urls")),
    path("", include("tenants.urls")),
    path("", include("domains.urls")),
    path("", include("templates_app.urls")),
    path("", include("webhooks.urls")),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("healthz", healthz),
    path("u/<str:token>", one_click_unsubscribe, name="one-click-unsubscribe"),  # RFC 8058 (sending/unsubscribe_views.py)
    path("admin/password_change/", admin_password_change),  # the login limits apply to the old password
    path("admin/", admin.site.urls),
    path("portal/", include("portal.urls")),
    path("", RedirectView.as_view(url="/portal/", permanent=False)),
]
