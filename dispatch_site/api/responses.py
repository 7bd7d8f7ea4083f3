"""Success responses in the spec's shape: {"data": ..., "message"?: ..., "pagination"?: ...}."""
import datetime

from rest_framework.response import Response


def timestamp(moment):
    """A point in time as the spec writes it: UTC, whole seconds, `Z` ("2026-03-29T10:00:05Z").
    One fixed shape, so strict parsers work on every field (isoformat alone adds a fraction
    only when there is one). None stays None."""
    if moment is None:
        return None
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def ok(data=None, *, message=None, status=200, pagination=None, headers=None):
    body = {"data": data}
    if message is not None:
        body["message"] = message
    if pagination is not None:
        body["pagination"] = pagination
    return Response(body, status=status, headers=headers)


def created(data=None, *, message=None):
    return ok(data, message=message, status=201)
