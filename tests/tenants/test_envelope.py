import pytest
from django.test import override_settings
from django.urls import path
from rest_framework.views import APIView

pytestmark = pytest.mark.django_db


def test_unknown_route_is_json_404(api):
    r = api.get("/api/v1/no/such/thing")
    assert r.status_code == 404
    assert r.json() == {"error": {"code": "NOT_FOUND", "message": "Not found."}}


def test_malformed_json_is_400_envelope(api):
    r = api.post("/api/v1/dispatch/tenants", data="{not json", content_type="application/json")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "MALFORMED_REQUEST"


def test_wrong_content_type_is_415_envelope(api):
    r = api.post("/api/v1/dispatch/tenants", data="tenant_name=x", content_type="application/x-www-form-urlencoded")
    assert r.status_code == 415
    assert r.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


def test_wrong_method_is_405_envelope(api):
    r = api.delete("/api/v1/dispatch/plans")
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_field_errors_carry_details(api):
    r = api.post("/api/v1/dispatch/tenants", {"tenant_name": ""}, format="json")
    assert r.status_code == 400
    body = r.json()["error"]
    assert body["code"] == "VALIDATION_ERROR" and "tenant_name" in body["details"]


class Boom(APIView):
    authentication_classes = []
    permission_classes = []

    def get(self, request):
        raise RuntimeError("secret stack detail")


urlpatterns = [path("api/v1/boom", Boom.as_view())]


@override_settings(ROOT_URLCONF=__name__, DEBUG=False)
def test_unhandled_exception_is_500_envelope_without_stack_trace(client):
    r = client.get("/api/v1/boom")
    assert r.status_code == 500
    assert r.json() == {"error": {"code": "INTERNAL_ERROR", "message": "Internal server error."}}
    assert b"secret stack detail" not in r.content


def test_openapi_schema_and_docs_are_served(client):
    r = client.get("/api/v1/schema/")
    assert r.status_code == 200 and b"/api/v1/dispatch/tenants/{tenant_id}/credentials" in r.content
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    assert b"cdn" not in docs.content.lower()
