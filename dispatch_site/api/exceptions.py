"""One error envelope for every API error: {"error": {"code", "message", "details"?}}."""
import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import DatabaseError
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

from dispatch_site.errors import DispatchError, RateLimited

logger = logging.getLogger(__name__)

_DRF_CODES = {
    drf.ParseError: "MALFORMED_REQUEST",
    drf.AuthenticationFailed: "UNAUTHORIZED",
    drf.NotAuthenticated: "UNAUTHORIZED",
    drf.PermissionDenied: "FORBIDDEN",
    drf.NotFound: "NOT_FOUND",
    drf.MethodNotAllowed: "METHOD_NOT_ALLOWED",
    drf.NotAcceptable: "NOT_ACCEPTABLE",
    drf.UnsupportedMediaType: "UNSUPPORTED_MEDIA_TYPE",
    drf.Throttled: "RATE_LIMITED",
    drf.ValidationError: "VALIDATION_ERROR",
}


def error_body(code, message, details=None):
    body = {"error": {"code": code, "message": message}}
    if details:
        body["error"]["details"] = details
    return body


def _first_message(detail):
    """A readable one-line message from DRF's nested error detail."""
    if isinstance(detail, dict):
        for field, value in detail.items():
            inner = _first_message(value)
            return inner if field in ("non_field_errors", "detail") else f"{field}: {inner}"
    if isinstance(detail, (list, tuple)) and detail:
        return _first_message(detail[0])
    return str(detail)


def envelope_exception_handler(exc, context):
    if isinstance(exc, DispatchError):
        response = Response(error_body(exc.code, exc.message, exc.details), status=exc.status)
        if isinstance(exc, RateLimited):
            response["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, Http404):
        return Response(error_body("NOT_FOUND", "Not found."), status=404)
    if isinstance(exc, DjangoPermissionDenied):
        return Response(error_body("FORBIDDEN", "You do not have permission to perform this action."), status=403)
    if isinstance(exc, drf.APIException):
        code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "ERROR")
        if isinstance(exc, drf.ValidationError):
            response = Response(
                error_body(code, _first_message(exc.detail), exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}),
                status=400,
            )
        else:
            message = exc.detail if isinstance(exc.detail, str) else _first_message(exc.detail)
            response = Response(error_body(code, str(message)), status=exc.status_code)
        if getattr(exc, "auth_header", None):
            response["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            response["Retry-After"] = str(int(exc.wait))
        return response
    if isinstance(exc, RequestDataTooBig):  # body over DISPATCH_MAX_REQUEST_BYTES
        return Response(error_body("REQUEST_TOO_LARGE", "The request body is larger than this server accepts."), status=413)
    if isinstance(exc, SuspiciousOperation):
        return Response(error_body("BAD_REQUEST", "The request could not be processed."), status=400)
    if isinstance(exc, DatabaseError):
        logger.exception("database error in API view")
        return Response(error_body("SERVICE_UNAVAILABLE", "Service temporarily unavailable, try again."), status=503)
    logger.exception("unhandled error in API view")
    return Response(error_body("INTERNAL_ERROR", "Internal server error."), status=500)


def _wants_html(request):
    return not request.path.startswith("/api/") and "text/html" in request.headers.get("Accept", "")


def json_404(request, exception=None):
    """JSON envelope for the API and machines; a page for people browsing the portal."""
    if _wants_html(request):
        from django.shortcuts import render

        return render(request, "portal/error.html", {"title": "Not found",
                      "text": "This page does not exist, or it belongs to someone else."}, status=404)
    return JsonResponse(error_body("NOT_FOUND", "Not found."), status=404)


def json_500(request):
    return JsonResponse(error_body("INTERNAL_ERROR", "Internal server error."), status=500)


def json_400(request, exception=None):
    return JsonResponse(error_body("BAD_REQUEST", "Bad request."), status=400)


def json_403(request, exception=None):
    return JsonResponse(error_body("FORBIDDEN", "Forbidden."), status=403)
