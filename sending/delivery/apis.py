from drf_spectacular.utils import extend_schema

from dispatch_site.api.responses import ok, timestamp
from dispatch_site.api.views import TenantScopedAPIView

from . import selectors


class QueueView(TenantScopedAPIView):
    @extend_schema(responses={200: dict}, tags=["sending"], summary="View email queue summary")
    def get(self, request, tenant_id):
        summary = selectors.queue_summary(tenant=self.tenant)
        return ok({
            "pending": summary["pending"],
            "sending": summary["sending"],
            "deferred": summary["deferred"],
            "next_retry_at": timestamp(summary["next_retry_at"]),
            "oldest_pending_age_seconds": summary["oldest_pending_age_seconds"],
        })
