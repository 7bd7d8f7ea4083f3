import json

import pytest

from templates_app.models import Template
from templates_app.services import template_create

pytestmark = pytest.mark.django_db

FIELDS = {"name": "Welcome", "slug": "", "subject": "Hi {{first_name}}", "html_body": "<h1>Hello {{first_name}}</h1>",
          "text_body": "Hello {{first_name}}", "variables": ""}


def test_create_list_and_edit_a_template(browser, page, tenant):
    r = browser.post(page("templates/new"), {**FIELDS, "variables": '{"first_name": {"default": "there"}}'})
    template = Template.objects.get(tenant=tenant)
    assert r.status_code == 302 and r["Location"] == page(f"templates/{template.id}")
    assert template.slug == "welcome" and template.variables["first_name"]["default"] == "there"
    assert "Welcome" in browser.get(page("templates")).content.decode()

    html = browser.get(r["Location"]).content.decode()
    assert "<code>first_name</code>" in html  # the variables table
    assert 'sandbox=""' in html and "Hello there" in html  # server-side preview with the default

    r = browser.post(page(f"templates/{template.id}"), {**FIELDS, "subject": "Welcome {{first_name}} to {{product}}"})
    assert r.status_code == 302
    template.refresh_from_db()
    assert template.subject == "Welcome {{first_name}} to {{product}}" and set(template.variables) == {"first_name", "product"}


def test_template_errors_are_shown_in_words(browser, page, tenant):
    r = browser.post(page("templates/new"), {**FIELDS, "html_body": "<p>{{ broken</p>{{", "text_body": ""})
    assert r.status_code == 200 and b"Invalid placeholder" in r.content
    r = browser.post(page("templates/new"), {**FIELDS, "variables": "{nope"})
    assert b"Variables is not valid JSON" in r.content
    assert not Template.objects.exists()


def test_live_preview_renders_the_unsaved_draft_without_saving(browser, page, tenant):
    r = browser.post(page("templates/preview"), {
        **FIELDS, "html_body": "<p>Hi {{first_name}}</p>{{missing}}", "sample_variables": json.dumps({"first_name": "<Ann>"}),
    })
    data = r.json()
    assert r.status_code == 200 and data["subject"] == "Hi <Ann>"
    assert data["html"] == "<p>Hi &lt;Ann&gt;</p>" and data["missing_variables"] == ["missing"]
    assert data["srcdoc"].startswith('<meta http-equiv="Content-Security-Policy"') and data["srcdoc"].endswith(data["html"])
    assert not Template.objects.exists()

    r = browser.post(page("templates/preview"), {**FIELDS, "subject": "{{ oops"})
    assert r.status_code == 400 and "Invalid placeholder" in r.json()["error"]


def test_live_preview_can_wrap_in_the_master_template(browser, page):
    r = browser.post(page("templates/preview"), {**FIELDS, "use_master_template": "on"})
    assert "<h1>Hello </h1>" in r.json()["html"] and "<!DOCTYPE html>" in r.json()["html"]


def test_deleting_a_template(browser, page, tenant):
    template = template_create(tenant=tenant, name="Old", subject="s", text_body="t")
    r = browser.post(page(f"templates/{template.id}/delete"), follow=True)
    assert b"Template Old deleted" in r.content and not Template.objects.exists()


def test_another_tenants_template_is_not_found(browser, page, other_tenant, other_page):
    foreign = template_create(tenant=other_tenant, name="Theirs", subject="s", text_body="t")
    assert browser.get(page(f"templates/{foreign.id}")).status_code == 404
    assert browser.post(page(f"templates/{foreign.id}"), {**FIELDS}).status_code == 404
    assert browser.post(page(f"templates/{foreign.id}/delete")).status_code == 404
    assert browser.post(other_page("templates/preview"), FIELDS).status_code == 404
    foreign.refresh_from_db()
    assert foreign.name == "Theirs"
