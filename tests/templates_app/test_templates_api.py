"""Templates API: CRUD, slugs, variables, validation, preview, tenant isolation."""
import uuid

import pytest

from templates_app import rendering
from templates_app.models import Template

pytestmark = pytest.mark.django_db

WELCOME = {
    "name": "Welcome Email",
    "slug": "welcome-email",
    "subject": "Welcome, {{user_name}}!",
    "html_body": "<h1>Hello {{user_name}}</h1><p>Welcome to {{company}}.</p>",
    "text_body": "Hello {{user_name}}, welcome to {{company}}.",
}


def url(tenant, template_id=None, suffix=""):
    base = f"/api/v1/dispatch/tenants/{tenant.id}/templates"
    return f"{base}/{template_id}{suffix}" if template_id else base


def create(client, tenant, **overrides):
    r = client.post(url(tenant), {**WELCOME, **overrides}, format="json")
    assert r.status_code == 201, r.content
    return r.json()["data"]


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    return error


def test_create_as_in_the_spec_and_read_back(api, tenant):
    data = create(api, tenant)
    assert data["slug"] == "welcome-email" and data["name"] == "Welcome Email"
    assert set(data["variables"]) == {"user_name", "company"}
    assert data["variables"]["company"] == {"default": None, "description": ""}
    uuid.UUID(data["id"])
    got = api.get(url(tenant, data["id"])).json()["data"]
    assert got == data
    listed = api.get(url(tenant)).json()
    assert [t["id"] for t in listed["data"]] == [data["id"]]
    assert listed["pagination"]["total"] == 1


def test_credential_can_manage_templates(cred_api, tenant):
    data = create(cred_api, tenant)
    assert cred_api.get(url(tenant, data["id"])).status_code == 200


def test_slug_is_generated_from_the_name_and_numbered_on_collision(api, tenant):
    first = create(api, tenant, slug=None, name="Password Reset!")
    second = create(api, tenant, slug="", name="Password  reset")
    assert first["slug"] == "password-reset"
    assert second["slug"] == "password-reset-2"
    assert create(api, tenant, slug=None, name="日本語")["slug"] == "template"


def test_explicit_slug_taken_is_409(api, tenant):
    create(api, tenant)
    assert_error(api.post(url(tenant), {**WELCOME, "slug": "Welcome-Email"}, format="json"), 409, "TEMPLATE_SLUG_TAKEN")
    other = create(api, tenant, slug="other")
    r = api.put(url(tenant, other["id"]), {"slug": "welcome-email"}, format="json")
    assert_error(r, 409, "TEMPLATE_SLUG_TAKEN")


def test_same_slug_in_two_tenants_is_fine(api, other_api, tenant, other_tenant):
    mine = create(api, tenant)
    theirs = create(other_api, other_tenant)
    assert mine["slug"] == theirs["slug"] == "welcome-email" and mine["id"] != theirs["id"]


@pytest.mark.parametrize(
    "slug, problem",
    [("has space", "lower-case"), ("a" * 101, "at most"), ("--", "lower-case"), (str(uuid.uuid4()), "UUID"), ("0" * 32, "UUID")],
)
def test_invalid_slugs_are_400(api, tenant, slug, problem):
    error = assert_error(api.post(url(tenant), {**WELCOME, "slug": slug}, format="json"), 400, "VALIDATION_ERROR")
    assert problem in error["details"]["slug"][0]


def test_put_is_a_partial_update_and_re_extracts_variables(api, tenant):
    data = create(api, tenant, variables={"company": {"default": "Acme", "description": "Company name"}})
    r = api.put(
        url(tenant, data["id"]),
        {"subject": "Welcome aboard, {{user_name}}!", "html_body": "<h1>Welcome {{user_name}}</h1><p>{{plan}}</p>"},
        format="json",
    )
    assert r.status_code == 200, r.content
    updated = r.json()["data"]
    assert updated["subject"] == "Welcome aboard, {{user_name}}!"
    assert updated["text_body"] == WELCOME["text_body"] and updated["name"] == WELCOME["name"]
    assert updated["variables"]["company"] == {"default": "Acme", "description": "Company name"}
    assert updated["variables"]["plan"] == {"default": None, "description": ""}
    assert updated["updated_at"] >= data["updated_at"]
    # Clearing the text body and the explicit variables: "company" is no longer used anywhere.
    updated = api.put(url(tenant, data["id"]), {"text_body": None, "variables": {}}, format="json").json()["data"]
    assert updated["text_body"] == "" and set(updated["variables"]) == {"user_name", "plan"}


def test_explicit_variables_accept_plain_defaults_and_reject_junk(api, tenant):
    data = create(api, tenant, variables={"company": "Acme", "count": 3, "extra": {"description": "not in body"}})
    assert data["variables"]["company"]["default"] == "Acme"
    assert data["variables"]["count"]["default"] == "3"
    assert data["variables"]["extra"] == {"default": None, "description": "not in body"}
    for bad in (["a"], {"bad name": "x"}, {"a": {"default": "x", "colour": "red"}}, {"a": {"default": [1]}}):
        r = api.post(url(tenant), {**WELCOME, "slug": None, "variables": bad}, format="json")
        assert_error(r, 400, "VALIDATION_ERROR")


def test_required_fields(api, tenant):
    error = assert_error(api.post(url(tenant), {"name": "x"}, format="json"), 400, "VALIDATION_ERROR")
    assert "subject" in error["details"]
    r = api.post(url(tenant), {"name": "x", "subject": "s", "html_body": " ", "text_body": ""}, format="json")
    assert_error(r, 400, "VALIDATION_ERROR")
    data = create(api, tenant)
    assert_error(api.put(url(tenant, data["id"]), {"subject": "  "}, format="json"), 400, "VALIDATION_ERROR")


def test_invalid_placeholder_is_rejected_on_save(api, tenant):
    r = api.post(url(tenant), {**WELCOME, "html_body": "<p>{{#each items}}x{{/each}}</p>"}, format="json")
    error = assert_error(r, 400, "TEMPLATE_SYNTAX_ERROR")
    assert "#each" in error["message"] and error["details"]["html_body"]
    data = create(api, tenant)
    assert_error(api.put(url(tenant, data["id"]), {"subject": "Hi {{ user name }}"}, format="json"), 400, "TEMPLATE_SYNTAX_ERROR")


def test_oversized_template_is_a_clear_400(api, tenant):
    big = "<p>" + "x" * rendering.MAX_TEMPLATE_CHARS + "</p>"
    error = assert_error(api.post(url(tenant), {**WELCOME, "html_body": big}, format="json"), 400, "TEMPLATE_TOO_LARGE")
    assert "html_body" in error["details"]
    assert not Template.objects.exists()
    # Exactly at the limit is accepted.
    create(api, tenant, slug="max", text_body="y" * rendering.MAX_TEMPLATE_CHARS)


def test_nul_characters_are_a_400_not_a_crash(api, tenant):
    r = api.post(url(tenant), {**WELCOME, "html_body": "a\x00b"}, format="json")
    assert_error(r, 400, "VALIDATION_ERROR")
    r = api.post(url(tenant), {**WELCOME, "variables": {"a": "b\x00"}}, format="json")
    assert r.status_code == 400


def test_delete(api, tenant):
    data = create(api, tenant)
    r = api.delete(url(tenant, data["id"]))
    assert r.status_code == 200 and r.json()["data"] is None
    assert_error(api.get(url(tenant, data["id"])), 404, "TEMPLATE_NOT_FOUND")
    assert_error(api.delete(url(tenant, data["id"])), 404, "TEMPLATE_NOT_FOUND")


def test_unknown_template_is_404_on_every_endpoint(api, tenant):
    missing = uuid.uuid4()
    assert_error(api.get(url(tenant, missing)), 404, "TEMPLATE_NOT_FOUND")
    assert_error(api.put(url(tenant, missing), {"name": "x"}, format="json"), 404, "TEMPLATE_NOT_FOUND")
    assert_error(api.delete(url(tenant, missing)), 404, "TEMPLATE_NOT_FOUND")
    assert_error(api.post(url(tenant, missing, "/render"), {}, format="json"), 404, "TEMPLATE_NOT_FOUND")


def test_render_preview_reports_missing_variables(api, tenant):
    data = create(api, tenant)
    r = api.post(
        url(tenant, data["id"], "/render"), {"template_variables": {"user_name": "<Ann>\r\nBcc: x@y"}}, format="json"
    )
    assert r.status_code == 200, r.content
    out = r.json()["data"]
    assert out["subject"] == "Welcome, <Ann> Bcc: x@y!"
    assert out["html"] == "<h1>Hello &lt;Ann&gt;\r\nBcc: x@y</h1><p>Welcome to .</p>"
    assert out["text"] == "Hello <Ann>\r\nBcc: x@y, welcome to ."
    assert out["missing_variables"] == ["company"]


def test_render_preview_with_master_template(api, tenant):
    data = create(api, tenant)
    out = api.post(
        url(tenant, data["id"], "/render"),
        {"template_variables": {"user_name": "Ann", "company": "Acme"}, "use_master_template": True},
        format="json",
    ).json()["data"]
    assert out["html"].startswith("<!DOCTYPE html>") and "<h1>Hello Ann</h1><p>Welcome to Acme.</p>" in out["html"]
    assert out["missing_variables"] == []


def test_render_preview_rejects_bad_or_huge_variables(api, tenant):
    data = create(api, tenant)
    render_url = url(tenant, data["id"], "/render")
    assert_error(api.post(render_url, {"template_variables": ["x"]}, format="json"), 400, "TEMPLATE_VARIABLES_INVALID")
    huge = {"user_name": "x" * (rendering.MAX_VARIABLES_CHARS + 1)}
    assert_error(api.post(render_url, {"template_variables": huge}, format="json"), 400, "TEMPLATE_VARIABLES_TOO_LARGE")


def test_rendered_output_over_the_limit_is_a_400(api, tenant):
    body = "{{v}}" * 100
    data = create(api, tenant, html_body=body, text_body="")
    value = "x" * (rendering.MAX_RENDERED_CHARS // 100 + 1)  # within the variables limit
    r = api.post(url(tenant, data["id"], "/render"), {"template_variables": {"v": value}}, format="json")
    assert_error(r, 400, "RENDERED_TOO_LARGE")


def test_cross_tenant_access_is_404_for_every_endpoint(api, other_api, tenant):
    data = create(api, tenant)
    template_id = data["id"]
    assert_error(other_api.get(url(tenant)), 404, "TENANT_NOT_FOUND")
    assert_error(other_api.post(url(tenant), WELCOME, format="json"), 404, "TENANT_NOT_FOUND")
    assert_error(other_api.get(url(tenant, template_id)), 404, "TENANT_NOT_FOUND")
    assert_error(other_api.put(url(tenant, template_id), {"name": "pwned"}, format="json"), 404, "TENANT_NOT_FOUND")
    assert_error(other_api.delete(url(tenant, template_id)), 404, "TENANT_NOT_FOUND")
    assert_error(other_api.post(url(tenant, template_id, "/render"), {}, format="json"), 404, "TENANT_NOT_FOUND")
    assert Template.objects.get(pk=template_id).name == WELCOME["name"]


def test_another_tenants_template_id_under_my_tenant_is_404(api, other_api, tenant, other_tenant):
    theirs = create(other_api, other_tenant)
    for response in (
        api.get(url(tenant, theirs["id"])),
        api.put(url(tenant, theirs["id"]), {"name": "pwned"}, format="json"),
        api.delete(url(tenant, theirs["id"])),
        api.post(url(tenant, theirs["id"], "/render"), {}, format="json"),
    ):
        assert_error(response, 404, "TEMPLATE_NOT_FOUND")
    assert api.get(url(tenant)).json()["data"] == []
    assert Template.objects.get(pk=theirs["id"]).name == WELCOME["name"]


def test_other_tenants_credential_is_403(other_cred_api, api, tenant):
    data = create(api, tenant)
    for response in (
        other_cred_api.get(url(tenant)),
        other_cred_api.post(url(tenant), WELCOME, format="json"),
        other_cred_api.get(url(tenant, data["id"])),
        other_cred_api.put(url(tenant, data["id"]), {"name": "pwned"}, format="json"),
        other_cred_api.delete(url(tenant, data["id"])),
        other_cred_api.post(url(tenant, data["id"], "/render"), {}, format="json"),
    ):
        assert_error(response, 403, "CREDENTIAL_MISMATCH")
    assert Template.objects.get(pk=data["id"]).name == WELCOME["name"]


def test_unauthenticated_is_401(tenant):
    from rest_framework.test import APIClient

    assert_error(APIClient().get(url(tenant)), 401, "UNAUTHORIZED")
