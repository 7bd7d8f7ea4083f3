from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from dispatch_site.api.pagination import paginate_by_page
from dispatch_site.api.responses import created, ok, timestamp
from dispatch_site.api.views import TenantScopedAPIView
from dispatch_site.errors import ValidationFailed
from tenants.apis import validated

from . import selectors, services
from .models import EVENT_TYPES, Delivery


def endpoint_data(endpoint):
    return {
        "id": str(endpoint.id),
        "url": endpoint.url,
        "events": endpoint.events,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason or None,
        "disabled_at": timestamp(endpoint.disabled_at),
        "failing_since": timestamp(endpoint.failing_since),
        "created_at": timestamp(endpoint.created_at),
        "updated_at": timestamp(endpoint.updated_at),
    }


def delivery_data(delivery):
    return {
        "id": str(delivery.id),
        "event_id": str(delivery.event_id),
        "event": delivery.event.type,
        "webhook_id": delivery.webhook_id,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": timestamp(delivery.next_attempt_at),
        "last_attempt_at": timestamp(delivery.last_attempt_at),
        "response_code": delivery.last_response_code,
        "response_body": delivery.last_response_body,
        "error": delivery.last_error or None,
        "succeeded_at": timestamp(delivery.succeeded_at),
        "created_at": timestamp(delivery.created_at),
    }


class EndpointCreateInput(serializers.Serializer):
    url = serializers.CharField(max_length=services.MAX_URL_LENGTH, trim_whitespace=False)
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_TYPES), allow_empty=False)
    secret = serializers.CharField(required=False, trim_whitespace=False, max_length=512)


class EndpointUpdateInput(serializers.Serializer):
    url = serializers.CharField(max_length=services.MAX_URL_LENGTH, trim_whitespace=False, required=False)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_TYPES), allow_empty=False, required=False
    )
    enabled = serializers.BooleanField(required=False)


class EndpointListView(TenantScopedAPIView):
    @extend_schema(responses={200: dict}, tags=["webhooks"])
    def get(self, request, tenant_id):
        return ok([endpoint_data(e) for e in selectors.endpoints_of(self.tenant)])

    @extend_schema(request=EndpointCreateInput, responses={201: dict}, tags=["webhooks"])
    def post(self, request, tenant_id):
        data = validated(EndpointCreateInput, request.data)
        endpoint, secret = services.endpoint_create(
            tenant=self.tenant, url=data["url"], events=data["events"], secret=data.get("secret")
        )
        body = endpoint_data(endpoint)
        body.update(secret=secret, note="Save this secret now - it will not be shown again.")
        return created(body, message="Webhook registered.")


class EndpointDetailView(TenantScopedAPIView):
    @extend_schema(responses={200: dict}, tags=["webhooks"])
    def get(self, request, tenant_id, webhook_id):
        return ok(endpoint_data(selectors.endpoint_get(tenant=self.tenant, endpoint_id=webhook_id)))

    @extend_schema(request=EndpointUpdateInput, responses={200: dict}, tags=["webhooks"])
    def patch(self, request, tenant_id, webhook_id):
        data = validated(EndpointUpdateInput, request.data)
        endpoint = services.endpoint_update(tenant=self.tenant, endpoint_id=webhook_id, **data)
        return ok(endpoint_data(endpoint), message="Webhook updated.")

    @extend_schema(responses={200: dict}, tags=["webhooks"])
    def delete(self, request, tenant_id, webhook_id):
        services.endpoint_delete(tenant=self.tenant, endpoint_id=webhook_id)
        return ok(None, message="Webhook deleted.")


class EndpointTestView(TenantScopedAPIView):
    @extend_schema(request=None, responses={202: dict}, tags=["webhooks"])
    def post(self, request, tenant_id, webhook_id):
        delivery = services.endpoint_send_test(tenant=self.tenant, endpoint_id=webhook_id)
        return ok(delivery_data(delivery), message="Test event queued.", status=202)


class DeliveryListView(TenantScopedAPIView):
    @extend_schema(responses={200: dict}, tags=["webhooks"])
    def get(self, request, tenant_id, webhook_id):
        endpoint = selectors.endpoint_get(tenant=self.tenant, endpoint_id=webhook_id)
        status = request.query_params.get("status") or None
        if status is not None and status not in Delivery.Status.values:
            allowed = ", ".join(Delivery.Status.values)
            raise ValidationFailed(f"status must be one of {allowed}", details={"status": [f"one of {allowed}"]})
        deliveries = selectors.deliveries_of(tenant=self.tenant, endpoint=endpoint, status=status)
        items, pagination = paginate_by_page(request, deliveries)
        return ok([delivery_data(d) for d in items], pagination=pagination)


class DeliveryReplayView(TenantScopedAPIView):
    @extend_schema(request=None, responses={202: dict}, tags=["webhooks"])
    def post(self, request, tenant_id, webhook_id, delivery_id):
        delivery = services.delivery_replay(tenant=self.tenant, endpoint_id=webhook_id, delivery_id=delivery_id)
        return ok(delivery_data(delivery), message="Delivery queued again.", status=202)
