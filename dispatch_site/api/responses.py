"""Success responses in the spec's shape: {"data": ..., "message"?: ..., "pagination"?: ...}."""
from rest_framework.response import Response


def ok(data=None, *, message=None, status=200, pagination=None, headers=None):
    body = {"data": data}
    if message is not None:
        body["message"] = message
    if pagination is not None:
        body["pagination"] = pagination
    return Response(body, status=status, headers=headers)


def created(data=None, *, message=None):
    return ok(data, message=message, status=201)
