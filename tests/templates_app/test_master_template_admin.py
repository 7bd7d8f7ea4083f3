"""Operators edit master templates in the Django admin and activate one."""
import pytest
from django.core.exceptions import ValidationError

from templates_app import services
from templates_app.models import MasterTemplate, Template

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, django_user_model):
    operator = django_user_model.objects.create_superuser(email="ops@example.org", password="x" * 20)
    client.force_login(operator)
    return client


def test_activate_action_switches_the_active_master(admin_client):
    first = MasterTemplate.objects.create(name="one", html="1{{content}}")
    second = MasterTemplate.objects.create(name="two", html="2{{content}}")
    services.master_template_activate(master_template=first)
    r = admin_client.post(
        "/admin/templates_app/mastertemplate/", {"action": "activate", "_selected_action": [str(second.pk)]}, follow=True
    )
    assert r.status_code == 200
    assert "is now the active master template" in r.content.decode()
    assert list(MasterTemplate.objects.filter(is_active=True).values_list("name", flat=True)) == ["two"]


def test_activate_needs_exactly_one_selection(admin_client):
    a = MasterTemplate.objects.create(name="a", html="{{content}}")
    b = MasterTemplate.objects.create(name="b", html="{{content}}")
    r = admin_client.post(
        "/admin/templates_app/mastertemplate/", {"action": "activate", "_selected_action": [str(a.pk), str(b.pk)]}, follow=True
    )
    assert "exactly one" in r.content.decode()
    assert not MasterTemplate.objects.filter(is_active=True).exists()


def test_master_html_must_have_a_content_slot_and_valid_placeholders(admin_client):
    r = admin_client.post("/admin/templates_app/mastertemplate/add/", {"name": "bad", "html": "<p>{{tenant_name}}</p>"})
    assert r.status_code == 200 and "{{content}} slot" in r.content.decode()
    r = admin_client.post("/admin/templates_app/mastertemplate/add/", {"name": "bad", "html": "{{content}} {{ x y }}"})
    assert r.status_code == 200 and "Invalid placeholder" in r.content.decode()
    assert not MasterTemplate.objects.exists()
    r = admin_client.post("/admin/templates_app/mastertemplate/add/", {"name": "good", "html": "<div>{{content}}</div>"})
    assert r.status_code == 302 and MasterTemplate.objects.get().name == "good"
    with pytest.raises(ValidationError):
        services.master_template_activate(master_template=MasterTemplate(name="x", html="no slot"))


def test_tenant_templates_are_read_only_in_admin(admin_client, tenant):
    template = services.template_create(tenant=tenant, name="W", subject="s", text_body="t")
    assert admin_client.get("/admin/templates_app/template/").status_code == 200
    assert admin_client.get(f"/admin/templates_app/template/{template.pk}/change/").status_code == 200
    assert admin_client.get("/admin/templates_app/template/add/").status_code == 403
    admin_client.post(f"/admin/templates_app/template/{template.pk}/change/", {"name": "changed"})
    assert Template.objects.get().name == "W"
