"""A single /send reads its sender domain, its recipients' suppressions and the tenant's webhook
endpoints in one statement (sending.services.Lookups.prefetch); the answers are those of the
separate reads."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from domains.models import Domain
from sending.suppressions import suppression_add
from webhooks.models import Delivery, Endpoint

from .conftest import message_payload

pytestmark = pytest.mark.django_db


def statements_naming(queries, table):
    return [q["sql"] for q in queries.captured_queries if f'"{table}"' in q["sql"] or f" {table} " in q["sql"]]


def test_one_statement_reads_the_domain_and_the_suppressions(cred_api, send_url, verified_domain, tenant):
    suppression_add(tenant=tenant, email="bob@example.org")
    with CaptureQueriesContext(connection) as queries:
        response = cred_api.post(send_url, message_payload(to=["alice@example.org", "Bob@Example.org"]), format="json")
    assert response.status_code == 200, response.content
    assert response.json()["data"]["recipients"] == [
        {"email": "alice@example.org", "status": "queued"}, {"email": "Bob@example.org", "status": "suppressed"},
    ]
    reads = [sql for sql in statements_naming(queries, Domain._meta.db_table) if sql.startswith("SELECT")]
    assert len(reads) == 1 and "sending_suppression" in reads[0]
    assert [sql for sql in statements_naming(queries, "sending_suppression") if sql not in reads] == []


def test_a_domain_that_is_not_usable_is_refused_as_before(cred_api, send_url, verified_domain):
    Domain.objects.filter(pk=verified_domain.pk).update(status=Domain.Status.FAILED)
    response = cred_api.post(send_url, message_payload(), format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "DOMAIN_NOT_VERIFIED"


def test_all_recipients_suppressed_is_refused_as_before(cred_api, send_url, verified_domain, tenant):
    suppression_add(tenant=tenant, email="alice@example.org")
    response = cred_api.post(send_url, message_payload(), format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "RECIPIENT_SUPPRESSED"


def test_the_sent_events_webhook_deliveries_come_from_the_same_read(cred_api, send_url, verified_domain, tenant, other_tenant):
    subscribed = Endpoint.objects.create(tenant=tenant, url="https://hooks.example/a", events=["sent"], secret_encrypted=b"x")
    Endpoint.objects.create(tenant=tenant, url="https://hooks.example/b", events=["delivered"], secret_encrypted=b"x")
    Endpoint.objects.create(tenant=tenant, url="https://hooks.example/c", events=["sent"], enabled=False, secret_encrypted=b"x")
    Endpoint.objects.create(tenant=other_tenant, url="https://hooks.example/d", events=["sent"], secret_encrypted=b"x")
    with CaptureQueriesContext(connection) as queries:
        response = cred_api.post(send_url, message_payload(to=["alice@example.org", "bob@example.org"]), format="json")
    assert response.status_code == 200, response.content
    reads = [sql for sql in statements_naming(queries, Endpoint._meta.db_table) if sql.startswith("SELECT")]
    assert len(reads) == 1 and Domain._meta.db_table in reads[0]
    deliveries = Delivery.objects.filter(tenant=tenant)
    assert sorted((d.endpoint_id, d.event.type, d.event.payload["recipient"]) for d in deliveries) == [
        (subscribed.pk, "sent", "alice@example.org"), (subscribed.pk, "sent", "bob@example.org"),
    ]


def test_send_bulk_still_reads_the_endpoints_for_its_events(cred_api, bulk_url, verified_domain, tenant):
    subscribed = Endpoint.objects.create(tenant=tenant, url="https://hooks.example/a", events=["sent"], secret_encrypted=b"x")
    response = cred_api.post(bulk_url, {"messages": [message_payload(), message_payload(to=["carol@example.org"])]}, format="json")
    assert response.status_code == 200, response.content
    assert sorted(d.event.payload["recipient"] for d in Delivery.objects.filter(tenant=tenant, endpoint=subscribed)) == [
        "alice@example.org", "carol@example.org",
    ]
