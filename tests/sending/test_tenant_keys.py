"""The per-message tables (messages, recipients, delivery attempts, events) reference their tenant
and credential without database foreign-key constraints (sending migration 0010): an INSERT then
takes no lock on the tenant's row. Deleting a tenant or a credential still reaches those rows
through Django's on_delete (CASCADE / SET_NULL), as it always did."""
import threading

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from sending.models import DeliveryAttempt, Message, Recipient
from tenants.models import Tenant
from tests.delivery.conftest import make_message
from webhooks.models import Event

pytestmark = pytest.mark.django_db(transaction=True)


def test_storing_mail_does_not_wait_for_a_transaction_that_holds_the_tenant_row(tenant):
    """With a foreign key, each INSERT checked it with SELECT ... FOR KEY SHARE on the tenant row,
    which waits for a FOR UPDATE holder (and, under load, made every concurrent submission of a
    tenant lock the same row)."""
    stored = threading.Event()
    errors = []

    def store_while_locked():
        try:
            with transaction.atomic():
                make_message(tenant, ["someone@example.org"])
            stored.set()
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    with transaction.atomic():
        Tenant.objects.select_for_update().get(pk=tenant.pk)  # e.g. an operator's edit in progress
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '5s'")
        thread = threading.Thread(target=store_while_locked)
        thread.start()
        assert stored.wait(3), f"storing waited for the tenant row lock: {errors}"
    thread.join(10)
    assert not errors
    assert Message.objects.filter(tenant=tenant).count() == 1


def test_deleting_a_tenant_still_deletes_its_mail(tenant, other_tenant):
    message, (recipient,) = make_message(tenant, ["someone@example.org"])
    DeliveryAttempt.objects.create(tenant=tenant, recipient=recipient, outcome="delivered", started_at=timezone.now())
    Event.objects.create(tenant=tenant, type="sent", payload={"event": "sent"})
    kept, _ = make_message(other_tenant, ["other@example.org"])

    Tenant.objects.get(pk=tenant.pk).delete()

    assert not Message.objects.filter(pk=message.pk).exists()
    assert not Recipient.objects.filter(pk=recipient.pk).exists()
    assert not DeliveryAttempt.objects.filter(tenant_id=tenant.pk).exists()
    assert not Event.objects.filter(tenant_id=tenant.pk).exists()
    assert Message.objects.filter(pk=kept.pk).exists()


def test_deleting_a_credential_keeps_its_messages_without_the_reference(tenant, credential):
    message, _ = make_message(tenant, ["someone@example.org"])
    Message.objects.filter(pk=message.pk).update(credential=credential)

    credential.delete()

    message.refresh_from_db()
    assert message.credential_id is None
