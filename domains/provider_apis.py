"""DNS providers (per user, JWT only) and a domain's automatic DNS setup."""
from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from dispatch_site.api.responses import created, ok, timestamp
from dispatch_site.api.views import TenantScopedAPIView, UserAPIView
from tenants.apis import validated

from . import provider_services, records
from .apis import domain_data
from .models import DnsProvider
from .providers.setup import DMARC_ACTIONS, SPF_ACTIONS


def provider_data(dns_provider):
    """What the API shows of a provider: never the credentials."""
    return {
        "id": str(dns_provider.id),
        "provider": dns_provider.provider,
        "label": dns_provider.label,
        "created_at": timestamp(dns_provider.created_at),
    }


# API tokens, AWS keys and GCP project ids are printable ASCII; anything else would only fail
# later inside an HTTP header or a signature.
_ASCII_TOKEN = r"^[\x21-\x7e]*$"
_ASCII_ERRORS = {"invalid": "Must be printable ASCII without spaces."}


class ProviderInput(serializers.Serializer):
    provider = serializers.ChoiceField(choices=DnsProvider.Provider.choices)
    label = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    # Credential fields; which ones are required depends on `provider` (checked by the service).
    token = serializers.RegexField(_ASCII_TOKEN, required=False, allow_blank=True, max_length=500, error_messages=_ASCII_ERRORS)
    access_key = serializers.RegexField(_ASCII_TOKEN, required=False, allow_blank=True, max_length=200, error_messages=_ASCII_ERRORS)
    secret_key = serializers.RegexField(_ASCII_TOKEN, required=False, allow_blank=True, max_length=200, error_messages=_ASCII_ERRORS)
    # AWS region names look like us-east-1 / ap-southeast-2 / us-gov-west-1; botocore refuses others.
    region = serializers.RegexField(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$", required=False, allow_blank=True, max_length=50,
                                    error_messages={"invalid": "Not an AWS region name (like us-east-1)."})
    service_account_json = serializers.JSONField(required=False)
    project_id = serializers.RegexField(_ASCII_TOKEN, required=False, allow_blank=True, max_length=100, error_messages=_ASCII_ERRORS)


class DnsProviderListView(UserAPIView):
    @extend_schema(responses={200: dict}, tags=["dns-providers"])
    def get(self, request):
        return ok([provider_data(p) for p in provider_services.dns_providers_of(request.user)])

    @extend_schema(request=ProviderInput, responses={201: dict}, tags=["dns-providers"])
    def post(self, request):
        data = dict(validated(ProviderInput, request.data))
        provider, label = data.pop("provider"), data.pop("label")
        dns_provider = provider_services.dns_provider_connect(
            owner=request.user, provider=provider, label=label, credentials=data
        )
        return created(provider_data(dns_provider), message="DNS provider connected; its credentials were accepted.")


class DnsProviderDetailView(UserAPIView):
    @extend_schema(responses={200: dict}, tags=["dns-providers"])
    def delete(self, request, provider_id):
        provider_services.dns_provider_delete(owner=request.user, provider_id=provider_id)
        return ok(None, message="DNS provider disconnected.")


class DnsProviderZonesView(UserAPIView):
    @extend_schema(responses={200: dict}, tags=["dns-providers"])
    def get(self, request, provider_id):
        zones = provider_services.dns_provider_zones(owner=request.user, provider_id=provider_id)
        return ok([z.as_dict() for z in zones])


class DnsSetupInput(serializers.Serializer):
    provider_id = serializers.UUIDField()
    zone_id = serializers.CharField(max_length=200)
    zone_name = serializers.CharField(max_length=253, required=False, allow_blank=True)
    spf_action = serializers.ChoiceField(choices=SPF_ACTIONS, default="append")
    dmarc_action = serializers.ChoiceField(choices=DMARC_ACTIONS, default="create")
    dmarc_rua_email = serializers.CharField(max_length=254, required=False, allow_blank=True, allow_null=True)


class DomainDnsSetupView(TenantScopedAPIView):
    # The provider belongs to a person: a tenant credential cannot reach it.
    allow_credential_auth = False

    @extend_schema(request=DnsSetupInput, responses={200: dict}, tags=["domains"])
    def post(self, request, tenant_id, domain_id):
        data = validated(DnsSetupInput, request.data)
        results, domain, checks = provider_services.domain_dns_setup(
            tenant=self.tenant, domain_id=domain_id, owner=request.user, **data
        )
        ownership = next(c for c in checks if c.kind == "verification")
        changed = sum(r["status"] in ("created", "updated") for r in results)
        return ok(
            {
                "records": results,
                "verified": ownership.status == records.VERIFIED,
                "domain": domain_data(domain),
                "checks": [c.as_dict() for c in checks],
            },
            message=f"DNS setup done: {changed} record(s) created or updated. {ownership.message}",
        )
