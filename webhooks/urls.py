from django.urls import path

from . import apis

_base = "dispatch/tenants/<uuid:tenant_id>/webhooks"

urlpatterns = [
    path(_base, apis.EndpointListView.as_view()),
    path(f"{_base}/<uuid:webhook_id>", apis.EndpointDetailView.as_view()),
    path(f"{_base}/<uuid:webhook_id>/test", apis.EndpointTestView.as_view()),
    path(f"{_base}/<uuid:webhook_id>/deliveries", apis.DeliveryListView.as_view()),
    path(f"{_base}/<uuid:webhook_id>/deliveries/<uuid:delivery_id>/replay", apis.DeliveryReplayView.as_view()),
]
