from django.urls import path

from . import apis, provider_apis

urlpatterns = [
    path("dispatch/tenants/<uuid:tenant_id>/domains", apis.DomainListView.as_view()),
    path("dispatch/tenants/<uuid:tenant_id>/domains/<uuid:domain_id>", apis.DomainDetailView.as_view()),
    path("dispatch/tenants/<uuid:tenant_id>/domains/<uuid:domain_id>/verify", apis.DomainVerifyView.as_view()),
    # DNS providers and automatic DNS setup (provider_apis.py)
    path("user/dns-providers", provider_apis.DnsProviderListView.as_view()),
    path("user/dns-providers/<uuid:provider_id>", provider_apis.DnsProviderDetailView.as_view()),
    path("user/dns-providers/<uuid:provider_id>/zones", provider_apis.DnsProviderZonesView.as_view()),
    path("dispatch/tenants/<uuid:tenant_id>/domains/<uuid:domain_id>/dns-setup", provider_apis.DomainDnsSetupView.as_view()),
]
