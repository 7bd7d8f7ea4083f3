"""Message bodies are stored in the message row (not TOAST) up to ~8 KB, and never compressed:
they are AES-GCM ciphertext, so a compression attempt only costs CPU (migration 0008)."""
import os
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from sending.models import Message

pytestmark = pytest.mark.django_db


def test_the_message_table_keeps_bodies_inline_and_uncompressed():
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'sending_message'")
        assert "toast_tuple_target=8160" in cursor.fetchone()[0]
        cursor.execute("SELECT attstorage FROM pg_attribute WHERE attrelid = 'sending_message'::regclass AND attname = 'body'")
        assert cursor.fetchone()[0] == "e"  # EXTERNAL: out of line when it must be, never compressed


@pytest.mark.parametrize("size", [2_100, 6_000, 40_000])
def test_bodies_of_every_size_read_back_intact(tenant, size):
    body = os.urandom(size)
    now = timezone.now()
    message = Message.objects.create(
        id=uuid.uuid4(), tenant=tenant, message_id=f"{uuid.uuid4().hex}@example.com", from_address="a@example.com",
        from_header="a@example.com", body=body, body_size_bytes=size, expires_at=now + timedelta(days=1),
    )
    assert bytes(Message.objects.get(pk=message.pk).body) == body
    with connection.cursor() as cursor:
        # Stored without compression, inline or not: the stored size is the body's own.
        cursor.execute("SELECT pg_column_size(body) FROM sending_message WHERE id = %s", [message.pk])
        assert cursor.fetchone()[0] >= size


def test_per_message_tables_carry_no_index_another_one_already_serves():
    """Migration 0009: every index on these tables is written on each insert and on each non-HOT
    update (a recipient row gets three). The unique index of message_id stays."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename IN ('sending_message', 'sending_recipient', 'webhooks_event')")
        names = {row[0] for row in cursor.fetchall()}
    assert "sending_message_message_id_key" in names  # uniqueness kept
    assert not any(name.endswith("_like") for name in names)
    assert not [name for name in names if name.endswith(("tenant_id_fecf377c", "tenant_id_90ac0559", "tenant_id_fb0ab879"))]
    assert {"message_tenant_queued", "recipient_tenant_email_ci", "webhooks_event_tenant_created", "recipient_status_next"} <= names
