from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView

from . import (views_account, views_credentials, views_dns_providers, views_domains, views_emails, views_suppressions,
               views_templates, views_tenants, views_webhooks)

app_name = "portal"

T = "t/<uuid:tenant_id>"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="portal:tenants"), name="home"),
    path("signup", views_account.signup, name="signup"),
    path("login", views_account.LoginView.as_view(), name="login"),
    path("logout", auth_views.LogoutView.as_view(next_page="portal:login"), name="logout"),
    path("password", views_account.password_change, name="password_change"),
    path("dns-providers", views_dns_providers.DnsProviders.as_view(), name="dns_providers"),
    path("dns-providers/<uuid:provider_id>/disconnect", views_dns_providers.DnsProviderDisconnect.as_view(),
         name="dns_provider_disconnect"),
    path("tenants", views_tenants.tenant_list, name="tenants"),
    path("tenants/new", views_tenants.tenant_create, name="tenant_create"),
    path(f"{T}/", views_tenants.Dashboard.as_view(), name="dashboard"),
    path(f"{T}/settings", views_tenants.TenantSettings.as_view(), name="tenant_settings"),
    path(f"{T}/credentials", views_credentials.Credentials.as_view(), name="credentials"),
    path(f"{T}/credentials/<uuid:credential_id>/revoke", views_credentials.CredentialRevoke.as_view(),
         name="credential_revoke"),
    path(f"{T}/domains", views_domains.Domains.as_view(), name="domains"),
    path(f"{T}/domains/<uuid:domain_id>", views_domains.DomainDetail.as_view(), name="domain"),
    path(f"{T}/domains/<uuid:domain_id>/verify", views_domains.DomainVerify.as_view(), name="domain_verify"),
    path(f"{T}/domains/<uuid:domain_id>/delete", views_domains.DomainDelete.as_view(), name="domain_delete"),
    path(f"{T}/domains/<uuid:domain_id>/dns-setup", views_domains.DomainDnsSetup.as_view(), name="domain_dns_setup"),
    path(f"{T}/templates", views_templates.Templates.as_view(), name="templates"),
    path(f"{T}/templates/new", views_templates.TemplateCreate.as_view(), name="template_create"),
    path(f"{T}/templates/preview", views_templates.TemplatePreview.as_view(), name="template_preview"),
    path(f"{T}/templates/<uuid:template_id>", views_templates.TemplateEdit.as_view(), name="template"),
    path(f"{T}/templates/<uuid:template_id>/delete", views_templates.TemplateDelete.as_view(), name="template_delete"),
    path(f"{T}/emails", views_emails.Emails.as_view(), name="emails"),
    path(f"{T}/emails/<uuid:email_id>", views_emails.EmailDetail.as_view(), name="email"),
    path(f"{T}/emails/<uuid:email_id>/erase", views_emails.EmailErase.as_view(), name="email_erase"),
    path(f"{T}/suppressions", views_suppressions.Suppressions.as_view(), name="suppressions"),
    path(f"{T}/suppressions/<uuid:suppression_id>/remove", views_suppressions.SuppressionRemove.as_view(),
         name="suppression_remove"),
    path(f"{T}/webhooks", views_webhooks.Webhooks.as_view(), name="webhooks"),
    path(f"{T}/webhooks/<uuid:webhook_id>", views_webhooks.WebhookDetail.as_view(), name="webhook"),
    path(f"{T}/webhooks/<uuid:webhook_id>/<slug:action>", views_webhooks.WebhookAction.as_view(),
         name="webhook_action"),
    path(f"{T}/webhooks/<uuid:webhook_id>/deliveries/<uuid:delivery_id>/replay", views_webhooks.WebhookReplay.as_view(),
         name="webhook_replay"),
]
