from django.urls import path

from . import apis
from .delivery import apis as delivery_apis

tenant = "dispatch/tenants/<uuid:tenant_id>"

urlpatterns = [
    path(f"{tenant}/send", apis.SendView.as_view()),
    path(f"{tenant}/send-bulk", apis.SendBulkView.as_view()),
    path(f"{tenant}/emails", apis.EmailListView.as_view()),
    path(f"{tenant}/emails/<uuid:log_id>", apis.EmailDetailView.as_view()),
    path(f"{tenant}/suppressions", apis.SuppressionListView.as_view()),
    path(f"{tenant}/suppressions/<uuid:suppression_id>", apis.SuppressionDetailView.as_view()),
    path(f"{tenant}/queue", delivery_apis.QueueView.as_view()),
]
