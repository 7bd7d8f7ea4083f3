from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from dispatch_site.api.responses import created, ok, timestamp
from dispatch_site.api.views import TenantScopedAPIView
from tenants.apis import validated

from . import records, selectors, services


def domain_data(domain):
    usable = domain.is_usable()
    status = domain.status
    if status == domain.Status.WARNING and not usable:
        status = domain.Status.FAILED  # the grace period ended before the next re-check ran
    return {
        "id": str(domain.id),
        "domain": domain.name,
        "domain_unicode": domain.unicode_name,
        "status": status,
        "verified": usable,
        "dkim_selector": domain.dkim_selector,
        "return_path_domain": domain.return_path_domain,
        "verified_at": timestamp(domain.verified_at),
        "warning_since": timestamp(domain.warning_since),
        "grace_ends_at": timestamp(domain.grace_ends_at),
        "last_checked_at": timestamp(domain.last_checked_at),
        "created_at": timestamp(domain.created_at),
    }


def stored_records_data(domain):
    """The expected records with the per-record result of the last check (no live DNS)."""
    stored = domain.dns_check.get("records", {})
    result = []
    for record in records.expected_records(domain):
        last = stored.get(record.kind) or {
            "status": records.UNCHECKED, "found": [], "message": "Not checked yet: call verify.",
        }
        result.append({**record.as_dict(), **last})
    return result


class DomainInput(serializers.Serializer):
    domain = serializers.CharField(max_length=300, trim_whitespace=True)


class DomainListView(TenantScopedAPIView):
    @extend_schema(operation_id="domains_list", responses={200: dict}, tags=["domains"])
    def get(self, request, tenant_id):
        return ok([
            {**domain_data(d), "dns_records": stored_records_data(d)} for d in selectors.domains_of_tenant(self.tenant)
        ])

    @extend_schema(operation_id="domains_create", request=DomainInput, responses={201: dict}, tags=["domains"])
    def post(self, request, tenant_id):
        data = validated(DomainInput, request.data)
        domain = services.domain_create(tenant=self.tenant, name=data["domain"])
        return created(
            {"domain": domain_data(domain), "dns_records": [r.as_dict() for r in records.expected_records(domain)]},
            message="Domain added. Publish the DNS records, then call verify.",
        )


class DomainDetailView(TenantScopedAPIView):
    @extend_schema(operation_id="domains_retrieve", responses={200: dict}, tags=["domains"])
    def get(self, request, tenant_id, domain_id):
        domain = selectors.domain_get(tenant=self.tenant, domain_id=domain_id)
        return ok({**domain_data(domain), "dns_records": stored_records_data(domain)})

    @extend_schema(operation_id="domains_delete", responses={200: dict}, tags=["domains"])
    def delete(self, request, tenant_id, domain_id):
        services.domain_delete(tenant=self.tenant, domain_id=domain_id)
        return ok(None, message="Domain removed.")


class DomainVerifyView(TenantScopedAPIView):
    @extend_schema(operation_id="domains_verify", request=None, responses={200: dict}, tags=["domains"])
    def post(self, request, tenant_id, domain_id):
        domain, checks = services.domain_verify(tenant=self.tenant, domain_id=domain_id)
        ownership = next(c for c in checks if c.kind == "verification")
        return ok(
            {"verified": ownership.status == records.VERIFIED, "domain": domain_data(domain),
             "records": [c.as_dict() for c in checks]},
            message=ownership.message,
        )
