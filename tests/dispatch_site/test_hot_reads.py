"""The fixed-SQL reads of the submission path give exactly what the ORM queries they replace
give, and read only the tenant's own rows."""
import pytest

from dispatch_site import hot_reads
from domains import services as domain_services
from domains.models import Domain
from tenants import services as tenant_services
from tenants.models import Credential
from webhooks.models import Endpoint

pytestmark = pytest.mark.django_db


def every_field(instance):
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


def test_the_credential_comes_with_its_tenant_and_plan_as_the_orm_gives_them(tenant):
    credential, _ = tenant_services.credential_create(tenant=tenant, label="ci")
    read = hot_reads.credential_with_tenant_and_plan(credential.name)
    orm = Credential.objects.select_related("tenant", "tenant__plan").get(pk=credential.pk)
    assert every_field(read) == every_field(orm)
    assert every_field(read.tenant) == every_field(orm.tenant)
    assert every_field(read.tenant.plan) == every_field(orm.tenant.plan)
    assert read._state.adding is False and read._state.db == "default"
    # The relations are loaded: no further query to reach the plan.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        assert read.tenant.plan.monthly_quota == orm.tenant.plan.monthly_quota
    assert not queries.captured_queries


def test_unknown_and_revoked_credentials(tenant):
    assert hot_reads.credential_with_tenant_and_plan("nobody-1234") is None
    credential, _ = tenant_services.credential_create(tenant=tenant, label="ci")
    tenant_services.credential_revoke(tenant=tenant, credential_id=credential.pk)
    read = hot_reads.credential_with_tenant_and_plan(credential.name)
    assert read is not None and read.is_revoked  # the caller answers "revoked" distinctly


def test_the_domain_is_read_only_from_its_own_tenant(tenant, other_tenant):
    mine = domain_services.domain_create(tenant=tenant, name="shared-name.example")
    theirs = domain_services.domain_create(tenant=other_tenant, name="shared-name.example")
    read = hot_reads.domain_of_tenant_by_name(tenant, "shared-name.example")
    assert read.pk == mine.pk != theirs.pk
    assert every_field(read) == every_field(Domain.objects.get(pk=mine.pk))
    assert read.tenant is tenant
    assert hot_reads.domain_of_tenant_by_name(other_tenant, "shared-name.example").pk == theirs.pk
    assert hot_reads.domain_of_tenant_by_name(tenant, "other.example") is None


def test_a_messages_domain_and_suppressions_come_in_one_query_as_the_two_reads_give_them(tenant, other_tenant):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from sending.suppressions import suppressed_among, suppression_add

    mine = domain_services.domain_create(tenant=tenant, name="shared-name.example")
    domain_services.domain_create(tenant=other_tenant, name="only-theirs.example")
    suppression_add(tenant=tenant, email="Gone@Example.org")
    suppression_add(tenant=other_tenant, email="theirs@example.org")
    emails = ["gone@example.org", "GONE@example.org", "theirs@example.org", "fine@example.org"]
    with CaptureQueriesContext(connection) as queries:
        domain, suppressed = hot_reads.domain_and_suppressed(tenant, "shared-name.example", emails)
    assert len(queries.captured_queries) == 1
    assert every_field(domain) == every_field(hot_reads.domain_of_tenant_by_name(tenant, "shared-name.example"))
    assert domain.pk == mine.pk and domain.tenant is tenant
    assert suppressed == suppressed_among(tenant=tenant, emails=emails) == {"gone@example.org"}
    # Another tenant's domain is no domain; no suppression and no recipients are answers too.
    assert hot_reads.domain_and_suppressed(tenant, "only-theirs.example", emails) == (None, {"gone@example.org"})
    assert hot_reads.domain_and_suppressed(tenant, "shared-name.example", ["fine@example.org"])[1] == set()
    assert hot_reads.domain_and_suppressed(other_tenant, "nothing.example", []) == (None, set())


def test_only_the_tenants_enabled_endpoints_are_listed(tenant, other_tenant):
    on = Endpoint.objects.create(tenant=tenant, url="https://hooks.example/a", events=["sent", "delivered"], secret_encrypted=b"x")
    Endpoint.objects.create(tenant=tenant, url="https://hooks.example/b", events=["sent"], enabled=False, secret_encrypted=b"x")
    Endpoint.objects.create(tenant=other_tenant, url="https://hooks.example/c", events=["sent"], secret_encrypted=b"x")
    assert hot_reads.enabled_endpoint_subscriptions(tenant) == [(on.pk, ["sent", "delivered"])]
