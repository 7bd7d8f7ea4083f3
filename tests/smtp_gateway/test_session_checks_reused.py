"""At DATA the gateway hands what the session checked at MAIL and RCPT to the submission, which
does not read the sender domain or the suppression list again while those answers are fresh."""
import time
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from domains.models import Domain
from sending.models import Message, Suppression

from .test_submission import simple_message

pytestmark = pytest.mark.django_db


def selects_from(queries, model):
    return [q["sql"] for q in queries if model._meta.db_table in q["sql"] and q["sql"].lstrip().upper().startswith("SELECT")]


def test_data_reads_neither_the_sender_domain_nor_the_suppressions_again(smtp_starttls, sender):
    client = smtp_starttls(login=sender)
    client.mail("alice@example.com")
    client.rcpt("bob@example.net")
    with CaptureQueriesContext(connection) as captured:  # the gateway's thread shares this connection
        assert client.data(simple_message())[0] == 250
    assert selects_from(captured.captured_queries, Domain) == []
    assert selects_from(captured.captured_queries, Suppression) == []
    assert Message.objects.count() == 1


def test_a_sender_domain_answer_older_than_the_session_cache_is_read_again(smtp_starttls, sender, tenant, monkeypatch):
    client = smtp_starttls(login=sender)
    client.mail("alice@example.com")
    client.rcpt("bob@example.net")
    Domain.objects.for_tenant(tenant).update(status=Domain.Status.FAILED)
    later = time.monotonic() + 61
    monkeypatch.setattr("smtp_gateway.handlers.time", SimpleNamespace(monotonic=lambda: later))
    code, text = client.data(simple_message())
    assert (code, text[:5]) == (550, b"5.7.1")
    assert not Message.objects.exists()
