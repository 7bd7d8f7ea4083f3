"""A statement a connection runs again and again is prepared once (DATABASE_PREPARE_THRESHOLD):
PostgreSQL then stops parsing and planning it for every message."""
import pytest
from django.db import connection

from sending.models import Message

pytestmark = pytest.mark.django_db


def _prepared(text_fragment):
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall() if text_fragment in row[0]]


def test_a_repeated_query_is_prepared_on_its_connection(settings):
    assert connection.vendor == "postgresql"
    threshold = settings.DATABASES["default"]["OPTIONS"]["prepare_threshold"]
    assert threshold, "DATABASE_PREPARE_THRESHOLD is 0: nothing is ever prepared"
    for _ in range(threshold + 1):
        list(Message.objects.filter(subject="dispatch-prepared-probe").values_list("id", flat=True))
    assert _prepared('"sending_message"."subject" = $1')
