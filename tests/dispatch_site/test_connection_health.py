"""Reused database connections are health-checked at the start of each request without a round
trip (dispatch_site/postgresql/base.py): a connection the server dropped is replaced before the
request's first query, a healthy one is kept and costs no `SELECT 1`."""
import time

import psycopg
import pytest
from django.conf import settings
from django.db import close_old_connections, connection, connections

from dispatch_site.postgresql.base import DatabaseWrapper

pytestmark = pytest.mark.django_db(transaction=True)


def backend_pid():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def terminate(pid):
    """What a PostgreSQL restart, an operator or an idle timeout does to our connection."""
    params = settings.DATABASES["default"]
    with psycopg.connect(host=params["HOST"], port=params["PORT"] or 5432, user=params["USER"],
                         password=params["PASSWORD"], dbname=params["NAME"], autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
        while other.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
            time.sleep(0.01)


def next_request():
    """What Django does between two requests served on one connection (request_started)."""
    close_old_connections()


def test_the_database_engine_is_ours():
    assert isinstance(connections["default"], DatabaseWrapper)
    assert connection.settings_dict["CONN_HEALTH_CHECKS"] is True


def test_a_connection_the_server_terminated_is_replaced_before_the_next_request_uses_it():
    dropped = backend_pid()
    next_request()
    terminate(dropped)
    next_request()
    assert backend_pid() != dropped  # no OperationalError: the request got a fresh connection


def test_a_healthy_connection_is_kept_without_a_query(monkeypatch):
    kept = backend_pid()
    sent = []
    monkeypatch.setattr(connection, "is_usable", lambda: sent.append("SELECT 1") or True)
    for _ in range(3):
        next_request()
        assert backend_pid() == kept
    assert sent == []


def test_after_an_error_django_still_checks_with_a_query(monkeypatch):
    """Errors in a request leave the full check (is_usable) to Django, unchanged."""
    backend_pid()
    connection.errors_occurred = True
    checked = []
    monkeypatch.setattr(connection, "is_usable", lambda: checked.append(True) or True)
    next_request()
    assert checked == [True]
