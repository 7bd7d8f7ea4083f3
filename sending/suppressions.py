"""The per-tenant suppression list. Addresses are stored lower-case (ASCII domain), so the
list is case-insensitive and unique per tenant + address."""
from django.db import IntegrityError, connection, transaction

from dispatch_site.errors import NotFound

from .addresses import InvalidAddress, normalize_address
from .models import Suppression


def suppression_key(email: str) -> str:
    """The stored form of an address: validated, domain in ASCII, everything lower-case."""
    return normalize_address(email).lower()


def suppressed_among(*, tenant, emails) -> set:
    """The lower-case addresses among `emails` that are suppressed for `tenant` (one query).
    Every submission asks this: plain SQL costs a quarter of the ORM's CPU for it."""
    keys = sorted({e.lower() for e in emails})
    if not keys:
        return set()
    tenant_id = Suppression._meta.get_field("tenant").get_db_prep_value(tenant.pk, connection)
    table = Suppression._meta.db_table
    if connection.vendor == "postgresql":
        # = ANY(array): one statement text whatever the number of addresses, so PostgreSQL keeps
        # it prepared (server-side binding) instead of planning an IN list of every length.
        sql, params = f"SELECT email FROM {table} WHERE tenant_id = %s AND email = ANY(%s::text[])", [tenant_id, keys]
    else:  # the development default, SQLite
        sql = f"SELECT email FROM {table} WHERE tenant_id = %s AND email IN ({', '.join(['%s'] * len(keys))})"
        params = [tenant_id, *keys]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}


def _lookup_key(email):
    try:
        return suppression_key(email)
    except InvalidAddress:
        return email.strip().lower()


def are_suppressed(*, tenant, emails) -> list[bool]:
    """For each of `emails` (as given, any case), whether it is suppressed — one query. The SMTP
    gateway answers the RCPTs of concurrent sessions with one call (smtp_gateway/batching.py)."""
    keys = [_lookup_key(email) for email in emails]
    found = suppressed_among(tenant=tenant, emails=keys)
    return [key in found for key in keys]


def is_suppressed(*, tenant, email) -> bool:
    return are_suppressed(tenant=tenant, emails=[email])[0]


def suppression_add(*, tenant, email, reason="", source=Suppression.Source.MANUAL, bounce_class="",
                    feedback_type="", source_message=None):
    """Add `email` to the list. Returns (suppression, created): an address already on the list
    is left as it is (the first reason and source are kept), which makes automatic sources
    (bounces, complaints, unsubscribes) idempotent."""
    key = suppression_key(email)
    existing = Suppression.objects.for_tenant(tenant).filter(email=key).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            return Suppression.objects.create(
                tenant=tenant, email=key, reason=(reason or "")[:1000], source=source, bounce_class=bounce_class,
                feedback_type=feedback_type, source_message=source_message,
            ), True
    except IntegrityError:
        return Suppression.objects.for_tenant(tenant).get(email=key), False


def suppression_remove(*, tenant, suppression_id):
    deleted, _ = Suppression.objects.for_tenant(tenant).filter(pk=suppression_id).delete()
    if not deleted:
        raise NotFound("Suppression not found.", code="SUPPRESSION_NOT_FOUND")
