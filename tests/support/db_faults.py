"""Database faults that need no server to misbehave."""
from contextlib import contextmanager

from django.db import OperationalError


@contextmanager
def first_reply_lost(connection, error="server closed the connection unexpectedly"):
    """While inside: the first statement run through `connection.cursor()` executes (and, in
    autocommit, commits), then raises OperationalError as if the connection died before its reply
    came back. Later statements run normally."""
    real_cursor, calls = connection.cursor, []

    class ReplyLost:
        def __init__(self, cursor):
            self.cursor = cursor

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.cursor.close()

        def execute(self, sql, params):
            self.cursor.execute(sql, params)
            raise OperationalError(error)

    def cursor():
        calls.append(1)
        return ReplyLost(real_cursor()) if len(calls) == 1 else real_cursor()

    connection.cursor = cursor
    try:
        yield
    finally:
        del connection.cursor  # the backend's own method again
