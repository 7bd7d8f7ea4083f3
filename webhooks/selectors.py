from dispatch_site.errors import NotFound

from .models import Delivery, Endpoint


def endpoints_of(tenant):
    return Endpoint.objects.for_tenant(tenant).order_by("created_at")


def endpoint_get(*, tenant, endpoint_id):
    endpoint = Endpoint.objects.for_tenant(tenant).filter(pk=endpoint_id).first()
    if endpoint is None:
        raise NotFound("Webhook not found.", code="WEBHOOK_NOT_FOUND")
    return endpoint


def disabled_endpoints(tenant):
    """Endpoints we switched off (410 or failing too long): what the portal warns about."""
    return endpoints_of(tenant).filter(enabled=False).exclude(disabled_reason="")


def deliveries_of(*, tenant, endpoint, status=None):
    deliveries = Delivery.objects.for_tenant(tenant).filter(endpoint=endpoint).select_related("event")
    if status:
        deliveries = deliveries.filter(status=status)
    return deliveries.order_by("-created_at", "-id")


def delivery_get(*, tenant, endpoint, delivery_id):
    delivery = Delivery.objects.for_tenant(tenant).filter(endpoint=endpoint, pk=delivery_id).first()
    if delivery is None:
        raise NotFound("Delivery not found.", code="DELIVERY_NOT_FOUND")
    return delivery
