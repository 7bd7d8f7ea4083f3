from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView

from . import views_account, views_credentials, views_tenants

app_name = "portal"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="portal:tenants"), name="home"),
    path("signup", views_account.signup, name="signup"),
    path("login", views_account.LoginView.as_view(), name="login"),
    path("logout", auth_views.LogoutView.as_view(next_page="portal:login"), name="logout"),
    path("password", views_account.password_change, name="password_change"),
    path("tenants", views_tenants.tenant_list, name="tenants"),
    path("tenants/new", views_tenants.tenant_create, name="tenant_create"),
    path("t/<uuid:tenant_id>/", views_tenants.Dashboard.as_view(), name="dashboard"),
    path("t/<uuid:tenant_id>/settings", views_tenants.TenantSettings.as_view(), name="tenant_settings"),
    path("t/<uuid:tenant_id>/credentials", views_credentials.Credentials.as_view(), name="credentials"),
    path("t/<uuid:tenant_id>/credentials/<uuid:credential_id>/revoke", views_credentials.CredentialRevoke.as_view(),
         name="credential_revoke"),
]
