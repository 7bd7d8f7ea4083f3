from django.urls import path

from . import apis

urlpatterns = [
    path("dispatch/tenants/<uuid:tenant_id>/templates", apis.TemplateListView.as_view()),
    path("dispatch/tenants/<uuid:tenant_id>/templates/<uuid:template_id>", apis.TemplateDetailView.as_view()),
    path("dispatch/tenants/<uuid:tenant_id>/templates/<uuid:template_id>/render", apis.TemplateRenderView.as_view()),
]
