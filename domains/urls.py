from django.urls import path

from . import apis

urlpatterns = [
    path("dispatch/tenants/<uuid:tenant_id>/domains", apis.DomainListView.as_view()),
    path("dispatch/tenants/<uuid:tenant_id>/domains/<uuid:domain_id>", apis.DomainDetailView.as_view()),
    path("dispatch/tenants/<uuid:tenant_id>/domains/<uuid:domain_id>/verify", apis.DomainVerifyView.as_view()),
]
