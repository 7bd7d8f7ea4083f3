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


def test_a_messages_domain_and_suppressions_come_in_one_query_as_the_separate_reads_give_them(tenant, other_tenant):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from sending.suppressions import suppressed_among, suppression_add

    mine = domain_services.domain_create(tenant=tenant, name="shared-name.example")
    domain_services.domain_create(tenant=other_tenant, name="only-theirs.example")
    suppression_add(tenant=tenant, email="Gone@Example.org")
    suppression_add(tenant=other_tenant, email="theirs@example.org")
    emails = ["gone@example.org", "GONE@example.org", "theirs@example.org", "fine@example.org"]
    with CaptureQueriesContext(connection) as queries:
        domain, suppressed, endpoints = hot_reads.send_lookups(tenant, "shared-name.example", emails)
    assert len(queries.captured_queries) == 1
    assert every_field(domain) == every_field(hot_reads.domain_of_tenant_by_name(tenant, "shared-name.example"))
    assert domain.pk == mine.pk and domain.tenant is tenant
    assert suppressed == suppressed_among(tenant=tenant, emails=emails) == {"gone@example.org"}
    assert endpoints == hot_reads.enabled_endpoint_subscriptions(tenant) == []
    # Another tenant's domain is no domain; no suppression and no recipients are answers too.
    assert hot_reads.send_lookups(tenant, "only-theirs.example", emails) == (None, {"gone@example.org"}, [])
    assert hot_reads.send_lookups(tenant, "shared-name.example", ["fine@example.org"])[1] == set()
    assert hot_reads.send_lookups(other_tenant, "nothing.example", []) == (None, set(), [])


def test_the_same_query_lists_the_tenants_enabled_endpoints_as_their_own_read_does(tenant, other_tenant):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    domain_services.domain_create(tenant=tenant, name="mine.example")
    one = Endpoint.objects.create(tenant=tenant, url="https://hooks.example/a", events=["sent", "delivered"], secret_encrypted=b"x")
    two = Endpoint.objects.create(tenant=tenant, url="https://hooks.example/b", events=[], secret_encrypted=b"x")
    Endpoint.objects.create(tenant=tenant, url="https://hooks.example/c", events=["sent"], enabled=False, secret_encrypted=b"x")
    Endpoint.objects.create(tenant=other_tenant, url="https://hooks.example/d", events=["sent"], secret_encrypted=b"x")
    with CaptureQueriesContext(connection) as queries:
        domain, _, endpoints = hot_reads.send_lookups(tenant, "mine.example", ["a@example.org"])
    assert len(queries.captured_queries) == 1 and domain.name == "mine.example"
    assert sorted(endpoints) == sorted(hot_reads.enabled_endpoint_subscriptions(tenant)) == sorted(
        [(one.pk, ["sent", "delivered"]), (two.pk, [])])
    assert all(type(endpoint_id) is type(one.pk) for endpoint_id, _ in endpoints)
    # Without a domain of that name the endpoints are still listed.
    assert sorted(hot_reads.send_lookups(tenant, "nothing.example", [])[2]) == sorted(endpoints)


def test_only_the_tenants_enabled_endpoints_are_listed(tenant, other_tenant):
    on = Endpoint.objects.create(tenant=tenant, url="https://hooks.example/a", events=["sent", "delivered"], secret_encrypted=b"x")
    Endpoint.objects.create(tenant=tenant, url="https://hooks.example/b", events=["sent"], enabled=False, secret_encrypted=b"x")
    Endpoint.objects.create(tenant=other_tenant, url="https://hooks.example/c", events=["sent"], secret_encrypted=b"x")
    assert hot_reads.enabled_endpoint_subscriptions(tenant) == [(on.pk, ["sent", "delivered"])]


def _built_and_orm(tenant, exclude=()):
    """A Recipient row built by Columns (its columns as read) and the same row through the ORM."""
    from django.db import connection

    from sending.models import Recipient
    from tests.delivery.conftest import make_message

    _, (recipient,) = make_message(tenant, ["someone@example.org"])
    columns = hot_reads.Columns(Recipient, "r", exclude=exclude)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns.sql(connection)} FROM sending_recipient r WHERE r.id = %s", [recipient.pk])
        row = cursor.fetchone()
    return columns.build(row, connection), Recipient.objects.defer(*exclude).get(pk=recipient.pk)


def test_a_built_instance_is_what_from_db_gives_deferred_fields_included(tenant):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    built, orm = _built_and_orm(tenant, exclude=("captured_message", "last_response_text"))
    assert {k: v for k, v in vars(built).items() if k != "_state"} == {k: v for k, v in vars(orm).items() if k != "_state"}
    assert built.get_deferred_fields() == orm.get_deferred_fields() == {"captured_message", "last_response_text"}
    assert (built._state.adding, built._state.db) == (False, "default")
    assert built.tenant_id == tenant.id
    with CaptureQueriesContext(connection) as queries:
        assert built.last_response_text == ""  # a deferred field loads on access, as the ORM's
        assert built.tenant == tenant  # and a relation through its key
    assert len(queries.captured_queries) == 2


def test_an_init_signal_listener_still_sees_every_built_instance(tenant):
    from django.db.models.signals import post_init

    from sending.models import Recipient

    seen = []

    def listener(sender, instance, **kwargs):
        seen.append(instance)

    post_init.connect(listener, sender=Recipient)
    try:
        built, _ = _built_and_orm(tenant)
    finally:
        post_init.disconnect(listener, sender=Recipient)
    assert built in seen and built._state.adding is False


def test_a_model_with_its_own_attribute_descriptor_is_built_through_from_db(monkeypatch):
    from sending.models import Recipient

    plain = hot_reads._plain_attributes.__wrapped__  # uncached: the class changes below
    assert plain(Recipient, ("id", "tenant_id", "email")) is True
    monkeypatch.setattr(Recipient, "email", property(lambda self: "", lambda self, value: None))
    assert plain(Recipient, ("id", "tenant_id", "email")) is False
    assert plain(Recipient, ("id", "tenant_id")) is True
