"""templates_app.services.render_for_send: the contract the sending path codes against."""
import uuid

import pytest
from django.db import IntegrityError, transaction

from dispatch_site.errors import NotFound
from templates_app import rendering, services
from templates_app.models import MasterTemplate
from templates_app.services import render_for_send

pytestmark = pytest.mark.django_db


@pytest.fixture
def welcome(tenant):
    return services.template_create(
        tenant=tenant,
        name="Welcome",
        slug="welcome-email",
        subject="Welcome, {{user_name}}!",
        html_body="<h1>Hello {{user_name}}</h1><p>{{company}}</p>",
        text_body="Hello {{user_name}} from {{company}}",
        variables={"company": "Acme"},
    )


def test_template_by_uuid_string_uuid_object_and_slug_render_the_same(tenant, welcome):
    variables = {"user_name": "Ann"}
    by_slug = render_for_send(tenant=tenant, template_ref="welcome-email", variables=variables)
    by_uuid = render_for_send(tenant=tenant, template_ref=str(welcome.id), variables=variables)
    by_uuid_object = render_for_send(tenant=tenant, template_ref=welcome.id, variables=variables)
    by_upper_slug = render_for_send(tenant=tenant, template_ref=" Welcome-Email ", variables=variables)
    assert by_slug == by_uuid == by_uuid_object == by_upper_slug
    assert by_slug.subject == "Welcome, Ann!"
    assert by_slug.html == "<h1>Hello Ann</h1><p>Acme</p>"
    assert by_slug.text == "Hello Ann from Acme"
    assert by_slug.missing == ()


def test_template_overrides_given_subject_and_html_and_text_falls_back(tenant, welcome):
    out = render_for_send(
        tenant=tenant, template_ref="welcome-email", subject="ignored", html_body="<p>ignored</p>",
        text_body="ignored", variables={"user_name": "Bo"},
    )
    assert (out.subject, out.html, out.text) == ("Welcome, Bo!", "<h1>Hello Bo</h1><p>Acme</p>", "Hello Bo from Acme")
    html_only = services.template_create(tenant=tenant, name="H", subject="S {{x}}", html_body="<p>{{x}}</p>")
    out = render_for_send(tenant=tenant, template_ref=html_only.slug, text_body="given text {{x}}", variables={"x": "1"})
    assert (out.subject, out.html, out.text) == ("S 1", "<p>1</p>", "given text {{x}}")
    text_only = services.template_create(tenant=tenant, name="T", subject="S", text_body="t {{x}}")
    out = render_for_send(tenant=tenant, template_ref=text_only.id, html_body="<p>ignored</p>", variables={"x": "<"})
    assert (out.html, out.text) == (None, "t <")


def test_missing_variables_render_empty_and_are_listed_never_raise(tenant, welcome):
    out = render_for_send(tenant=tenant, template_ref="welcome-email")
    assert out.subject == "Welcome, !" and out.text == "Hello  from Acme"
    assert out.missing == ("user_name",)


def test_unknown_or_other_tenants_template_is_template_not_found(tenant, other_tenant, welcome):
    theirs = services.template_create(tenant=other_tenant, name="Theirs", subject="s", text_body="t")
    for ref in ("nope", str(uuid.uuid4()), str(theirs.id), theirs.slug, theirs.id):
        with pytest.raises(NotFound) as caught:
            render_for_send(tenant=tenant, template_ref=ref)
        assert caught.value.code == "TEMPLATE_NOT_FOUND" and caught.value.status == 404


def test_same_slug_resolves_per_tenant(tenant, other_tenant, welcome):
    services.template_create(tenant=other_tenant, name="W", slug="welcome-email", subject="Other {{user_name}}", text_body="x")
    assert render_for_send(tenant=other_tenant, template_ref="welcome-email", variables={"user_name": "A"}).subject == "Other A"
    assert render_for_send(tenant=tenant, template_ref="welcome-email", variables={"user_name": "A"}).subject == "Welcome, A!"


def test_without_template_bodies_are_used_as_given(tenant):
    out = render_for_send(
        tenant=tenant, subject="Hi {{name}}", html_body="<p>{{name}}</p>", text_body="{{name}}", variables={"name": "x"}
    )
    assert (out.subject, out.html, out.text, out.missing) == ("Hi {{name}}", "<p>{{name}}</p>", "{{name}}", ())
    empty = render_for_send(tenant=tenant, subject="s", html_body="", text_body=None)
    assert empty.html is None and empty.text is None


@pytest.mark.parametrize("payload", ["\r\nBcc: victim@example.com", "\nBcc: v@e", "\rBcc: v@e", "\u2028Bcc: v@e"])
def test_subject_never_contains_line_breaks(tenant, welcome, payload):
    assert "\n" not in render_for_send(tenant=tenant, template_ref="welcome-email", variables={"user_name": payload}).subject
    raw = render_for_send(tenant=tenant, subject="Hello" + payload, text_body="x")
    assert "\r" not in raw.subject and "\n" not in raw.subject and raw.subject.startswith("Hello ")


def test_oversized_or_malformed_variables_are_400(tenant, welcome):
    with pytest.raises(rendering.VariablesTooLarge) as caught:
        render_for_send(tenant=tenant, template_ref="welcome-email", variables={"user_name": "x" * 300_000})
    assert caught.value.status == 400
    with pytest.raises(rendering.VariablesInvalid):
        render_for_send(tenant=tenant, template_ref="welcome-email", variables="user_name=x")


def test_master_template_wraps_html_with_escaped_tenant_name_and_raw_content(tenant, welcome):
    tenant.name = "Bob & <Co>"
    master = MasterTemplate.objects.create(
        name="Brand", html="<div class=brand>{{tenant_name}}|{{subject}}|{{footer | default:\"-\"}}<main>{{content}}</main></div>"
    )
    services.master_template_activate(master_template=master)
    out = render_for_send(
        tenant=tenant, template_ref="welcome-email", variables={"user_name": "<Ann>"}, use_master_template=True
    )
    assert out.html == (
        "<div class=brand>Bob &amp; &lt;Co&gt;|Welcome, &lt;Ann&gt;!|-"
        "<main><h1>Hello &lt;Ann&gt;</h1><p>Acme</p></main></div>"
    )
    assert out.text == "Hello <Ann> from Acme", "the text part is never wrapped"
    raw = render_for_send(tenant=tenant, subject="s", html_body="<p>{{not_substituted}}</p>", use_master_template=True)
    assert "<main><p>{{not_substituted}}</p></main>" in raw.html


def test_without_an_active_master_the_builtin_wrapper_is_used(tenant):
    MasterTemplate.objects.create(name="inactive", html="INACTIVE {{content}}")
    out = render_for_send(tenant=tenant, subject="Hi <there>", html_body="<p>body</p>", use_master_template=True)
    assert out.html.startswith("<!DOCTYPE html>") and "<p>body</p>" in out.html
    assert "<title>Hi &lt;there&gt;</title>" in out.html and "INACTIVE" not in out.html
    text_only = render_for_send(tenant=tenant, subject="s", text_body="t", use_master_template=True)
    assert text_only.html is None and text_only.text == "t"
    assert render_for_send(tenant=tenant, subject="s", html_body="<p>b</p>").html == "<p>b</p>"


def test_only_one_master_template_can_be_active(tenant):
    first = MasterTemplate.objects.create(name="one", html="1{{content}}")
    second = MasterTemplate.objects.create(name="two", html="2{{content}}")
    services.master_template_activate(master_template=first)
    services.master_template_activate(master_template=second)
    assert list(MasterTemplate.objects.filter(is_active=True)) == [second]
    assert render_for_send(tenant=tenant, subject="s", html_body="x", use_master_template=True).html == "2x"
    with pytest.raises(IntegrityError), transaction.atomic():
        MasterTemplate.objects.filter(pk=first.pk).update(is_active=True)
    services.master_template_deactivate(master_template=second)
    assert render_for_send(tenant=tenant, subject="s", html_body="x", use_master_template=True).html.startswith("<!DOCTYPE")


def test_master_output_is_bounded(tenant):
    MasterTemplate.objects.create(name="amp", html="{{content}}" * 20)
    services.master_template_activate(master_template=MasterTemplate.objects.get(name="amp"))
    with pytest.raises(rendering.RenderedTooLarge):
        render_for_send(tenant=tenant, subject="s", html_body="x" * 300_000, use_master_template=True)
