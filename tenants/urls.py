from django.urls import path

from . import apis

urlpatterns = [
    path("auth/register", apis.RegisterView.as_view()),
    path("auth/token", apis.TokenView.as_view()),
    path("auth/token/refresh", apis.TokenRefresh.as_view()),
    path("dispatch/plans", apis.PlanListView.as_view()),
    path("dispatch/tenants", apis.TenantListView.as_view()),
    path("dispatch/tenants/<uuid:tenant_id>", apis.TenantDetailView.as_view()),
    path("dispatch/tenants/<uuid:tenant_id>/usage", apis.UsageView.as_view()),
    path("dispatch/tenants/<uuid:tenant_id>/credentials", apis.CredentialListView.as_view()),
    path("dispatch/tenants/<uuid:tenant_id>/credentials/<uuid:credential_id>", apis.CredentialDetailView.as_view()),
]
