"""Fixed-SQL reads for the submission hot path.

Django compiles a queryset's SQL again on every evaluation. For the reads that every /send and
every SMTP message make (the credential with its tenant and plan, the sending domain, the
tenant's enabled webhook endpoints) compiling cost more client CPU than PostgreSQL spent
answering (bench/README.md, "Third pass"); a single /send reads its domain, its recipients'
suppressions and the tenant's endpoints in one statement, one round trip instead of three.
Their SQL is written once here instead: column lists come from the models' metadata, and rows
become model instances through `Model.from_db` with the fields' database converters applied
(or, where that is all from_db would do, straight into the instance: `Columns.build`), so
callers get exactly what the ORM would have given them.
A constant statement text also stays prepared under server-side binding.

Tenancy: every read of tenant-owned rows here takes the tenant and filters on it in SQL, as the
TenantScopedManager would. The one exception is the credential lookup, which is how a request
finds its tenant in the first place (`tenants.services.credential_authenticate`)."""
import json
import uuid
from functools import lru_cache

from django.db import connections, router
from django.db.models import Model
from django.db.models.base import ModelState
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_init, pre_init


class Columns:
    """The concrete columns of `model` selected under `alias`, and how to make an instance of
    a row's slice of them."""

    def __init__(self, model, alias, *, exclude=()):
        self.model = model
        self.alias = alias
        # Excluded fields are left deferred on the instances (loaded if ever read, like .defer()).
        self.fields = [f for f in model._meta.concrete_fields if not f.generated and f.name not in exclude]
        self.attnames = [f.attname for f in self.fields]
        self._exclude = tuple(sorted(exclude))
        self._plain = _plain_attributes(model, tuple(self.attnames))

    def sql(self, connection):
        quote = connection.ops.quote_name
        return ", ".join(f"{self.alias}.{quote(f.column)}" for f in self.fields)

    def _converters(self, connection):
        return _converters_of(self.model, self.alias, connection.alias, self._exclude)

    def build(self, values, connection):
        converters = self._converters(connection)
        if converters:
            values = list(values)
            for index, field_converters, expression in converters:
                value = values[index]
                for convert in field_converters:
                    value = convert(value, expression, connection)
                values[index] = value
        model = self.model
        if not self._plain or pre_init.has_listeners(model) or post_init.has_listeners(model):
            return model.from_db(connection.alias, self.attnames, values)
        # What from_db makes of these values, without Model.__init__'s per-field setattr walk
        # (most of the cost of a claimed batch's instances): _plain_attributes says each
        # attribute would be set straight into the instance's __dict__, and no init signal
        # listens. Fields left out stay absent, hence deferred, as from_db leaves them.
        instance = model.__new__(model)
        state = instance._state = ModelState()
        state.adding, state.db = False, connection.alias
        instance.__dict__.update(zip(self.attnames, values))
        return instance

    def __len__(self):
        return len(self.fields)


def build_row(row, parts, connection):
    """One instance per Columns of `parts`, from consecutive slices of `row`."""
    instances, start = [], 0
    for columns in parts:
        instances.append(columns.build(row[start : start + len(columns)], connection))
        start += len(columns)
    return instances


def _field_converters(field, alias, connection):
    """(converters, expression): what the ORM applies to a value of `field` read from the database."""
    expression = field.get_col(alias)
    return connection.ops.get_db_converters(expression) + expression.get_db_converters(connection), expression


@lru_cache(maxsize=None)
def _plain_attributes(model, attnames):
    """Whether setting `attnames` on a new instance of `model` is only writing its __dict__:
    the model keeps Model's __init__ and from_db, and each attribute is the field's plain
    deferred-loading descriptor (a foreign key's one also clears a cached related object,
    which a new instance has none of)."""
    if model.__init__ is not Model.__init__ or model.from_db.__func__ is not Model.from_db.__func__:
        return False
    plain = (DeferredAttribute, ForeignKeyDeferredAttribute)
    return all(type(_class_attribute(model, name)) in plain for name in attnames)


def _class_attribute(model, name):
    for klass in model.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return None


@lru_cache(maxsize=None)
def _converters_of(model, alias, using, exclude=()):
    connection = connections[using]
    out = []
    fields = (f for f in model._meta.concrete_fields if not f.generated and f.name not in exclude)
    for index, field in enumerate(fields):
        converters, expression = _field_converters(field, alias, connection)
        if converters:
            out.append((index, converters, expression))
    return tuple(out)


def _connection(model):
    return connections[router.db_for_read(model)]


def _fetch_one(connection, sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _param(model, field_name, value, connection):
    """`value` as the database stores `model.field_name` (a UUID is text on SQLite)."""
    return model._meta.get_field(field_name).get_db_prep_value(value, connection)


@lru_cache(maxsize=None)
def _credential_sql(using):
    from tenants.models import Credential, Plan, Tenant

    connection = connections[using]
    quote = connection.ops.quote_name
    parts = (Columns(Credential, "c"), Columns(Tenant, "t"), Columns(Plan, "p"))
    sql = (
        f"SELECT {', '.join(p.sql(connection) for p in parts)} "
        f"FROM {quote(Credential._meta.db_table)} c "
        f"JOIN {quote(Tenant._meta.db_table)} t ON t.{quote(Tenant._meta.pk.column)} = c.{quote(Credential._meta.get_field('tenant').column)} "
        f"JOIN {quote(Plan._meta.db_table)} p ON p.{quote(Plan._meta.pk.column)} = t.{quote(Tenant._meta.get_field('plan').column)} "
        f"WHERE c.{quote(Credential._meta.get_field('name').column)} = %s "
        f"ORDER BY c.{quote(Credential._meta.pk.column)} LIMIT 1"
    )
    return sql, parts


def credential_with_tenant_and_plan(name):
    """The Credential called `name` (revoked or not) with `.tenant` and `.tenant.plan` loaded,
    or None: `Credential.objects.select_related("tenant", "tenant__plan").filter(name=name).first()`."""
    from tenants.models import Credential, Tenant

    connection = _connection(Credential)
    sql, parts = _credential_sql(connection.alias)
    row = _fetch_one(connection, sql, [name])
    if row is None:
        return None
    credential, tenant, plan = build_row(row, parts, connection)
    Tenant._meta.get_field("plan").set_cached_value(tenant, plan)
    Credential._meta.get_field("tenant").set_cached_value(credential, tenant)
    return credential


@lru_cache(maxsize=None)
def _domain_sql(using):
    from domains.models import Domain

    connection = connections[using]
    quote = connection.ops.quote_name
    columns = Columns(Domain, "d")
    sql = (
        f"SELECT {columns.sql(connection)} FROM {quote(Domain._meta.db_table)} d "
        f"WHERE d.{quote(Domain._meta.get_field('tenant').column)} = %s "
        f"AND d.{quote(Domain._meta.get_field('name').column)} = %s "
        f"ORDER BY d.{quote(Domain._meta.pk.column)} LIMIT 1"
    )
    return sql, columns


def domain_of_tenant_by_name(tenant, name):
    """`Domain.objects.for_tenant(tenant).filter(name=name).first()`."""
    from domains.models import Domain

    connection = _connection(Domain)
    sql, columns = _domain_sql(connection.alias)
    row = _fetch_one(connection, sql, [_param(Domain, "tenant", tenant.pk, connection), name])
    if row is None:
        return None
    domain = columns.build(row, connection)
    Domain._meta.get_field("tenant").set_cached_value(domain, tenant)
    return domain


@lru_cache(maxsize=None)
def _send_lookups_sql(using):
    from sending.models import Suppression
    from webhooks.models import Endpoint

    connection = connections[using]
    quote = connection.ops.quote_name
    domain_sql, columns = _domain_sql(using)
    # One row whether or not the domain exists: its columns (NULL when absent), the array of
    # suppressed addresses and the enabled endpoints as a jsonb array of [id, events] (NULL when
    # none; one aggregate keeps each id with its events). `= ANY(array)` keeps one statement
    # text for any number of recipients.
    sql = (
        f"SELECT d.*, ARRAY(SELECT s.{quote(Suppression._meta.get_field('email').column)} "
        f"FROM {quote(Suppression._meta.db_table)} s "
        f"WHERE s.{quote(Suppression._meta.get_field('tenant').column)} = %s "
        f"AND s.{quote(Suppression._meta.get_field('email').column)} = ANY(%s::text[])), "
        f"(SELECT jsonb_agg(jsonb_build_array(e.{quote(Endpoint._meta.pk.column)}, "
        f"e.{quote(Endpoint._meta.get_field('events').column)})) "
        f"FROM {quote(Endpoint._meta.db_table)} e "
        f"WHERE e.{quote(Endpoint._meta.get_field('tenant').column)} = %s "
        f"AND e.{quote(Endpoint._meta.get_field('enabled').column)}) "
        f"FROM (SELECT 1) one LEFT JOIN LATERAL ({domain_sql}) d ON true"
    )
    return sql, columns


def send_lookups(tenant, name, emails):
    """(`domain_of_tenant_by_name(tenant, name)`, `suppressed_among(tenant=tenant, emails=emails)`,
    `enabled_endpoint_subscriptions(tenant)`) in one round trip: a single message's reads
    (sending.services.Lookups.prefetch); its `sent` events then need no endpoint query of their own."""
    from domains.models import Domain
    from sending.models import Suppression
    from sending.suppressions import suppressed_among
    from webhooks.models import Endpoint

    connection = _connection(Domain)
    if connection.vendor != "postgresql":  # the development default, SQLite: three queries
        return (domain_of_tenant_by_name(tenant, name), suppressed_among(tenant=tenant, emails=emails),
                enabled_endpoint_subscriptions(tenant))
    sql, columns = _send_lookups_sql(connection.alias)
    keys = sorted({e.lower() for e in emails})
    row = _fetch_one(connection, sql, [
        _param(Suppression, "tenant", tenant.pk, connection), keys,
        _param(Endpoint, "tenant", tenant.pk, connection),
        _param(Domain, "tenant", tenant.pk, connection), name,
    ])
    suppressed = set(row[-2])
    # Django loads jsonb as text (JSONField decodes it): the aggregate arrives as a JSON string.
    endpoints = [(uuid.UUID(endpoint_id), events) for endpoint_id, events in json.loads(row[-1] or "[]")]
    if row[columns.attnames.index(Domain._meta.pk.attname)] is None:  # no such domain
        return None, suppressed, endpoints
    domain = columns.build(row[:-2], connection)
    Domain._meta.get_field("tenant").set_cached_value(domain, tenant)
    return domain, suppressed, endpoints


@lru_cache(maxsize=None)
def _endpoints_sql(using):
    from webhooks.models import Endpoint

    connection = connections[using]
    quote = connection.ops.quote_name
    events = Endpoint._meta.get_field("events")
    sql = (
        f"SELECT e.{quote(Endpoint._meta.pk.column)}, e.{quote(events.column)} "
        f"FROM {quote(Endpoint._meta.db_table)} e "
        f"WHERE e.{quote(Endpoint._meta.get_field('tenant').column)} = %s "
        f"AND e.{quote(Endpoint._meta.get_field('enabled').column)}"
    )
    converters, expression = _field_converters(events, "e", connection)
    return sql, converters, expression


def enabled_endpoint_subscriptions(tenant):
    """[(endpoint id, [event types])] of the tenant's enabled webhook endpoints."""
    from webhooks.models import Endpoint

    connection = _connection(Endpoint)
    sql, converters, expression = _endpoints_sql(connection.alias)
    with connection.cursor() as cursor:
        cursor.execute(sql, [_param(Endpoint, "tenant", tenant.pk, connection)])
        rows = cursor.fetchall()
    out = []
    for endpoint_id, events in rows:
        for convert in converters:
            events = convert(events, expression, connection)
        out.append((endpoint_id, events))
    return out
