"""Every portal page: only for the logged-in owner (another user's tenant answers 404, a
visitor is sent to the login page), and every form is CSRF-protected."""
import uuid
from html.parser import HTMLParser

import pytest
from django.urls import reverse

from .conftest import logged_in

pytestmark = pytest.mark.django_db

ANY = uuid.UUID(int=1)
TENANT_PAGES = ["dashboard", "tenant_settings", "credentials", "domains", "templates", "template_create", "emails",
                "suppressions", "webhooks"]
# Every POST route below a tenant, with placeholder object ids.
TENANT_POSTS = [
    ("tenant_settings", {}), ("credentials", {}), ("credential_revoke", {"credential_id": ANY}),
    ("domains", {}), ("domain_verify", {"domain_id": ANY}), ("domain_delete", {"domain_id": ANY}),
    ("template_create", {}), ("template_preview", {}), ("template", {"template_id": ANY}),
    ("template_delete", {"template_id": ANY}), ("email_erase", {"email_id": ANY}), ("suppressions", {}),
    ("suppression_remove", {"suppression_id": ANY}), ("webhooks", {}), ("webhook", {"webhook_id": ANY}),
    ("webhook_action", {"webhook_id": ANY, "action": "test"}),
    ("webhook_replay", {"webhook_id": ANY, "delivery_id": ANY}), ("domain_dns_setup", {"domain_id": ANY}),
]


# Detail pages whose own tests check another tenant's object id.
DETAIL_PAGES = {"domain", "email"}


def test_the_lists_above_cover_every_tenant_route():
    from portal.urls import urlpatterns

    tenant_routes = {p.name for p in urlpatterns if "<uuid:tenant_id>" in str(p.pattern)}
    assert tenant_routes == set(TENANT_PAGES) | {name for name, _ in TENANT_POSTS} | DETAIL_PAGES


@pytest.mark.parametrize("name", TENANT_PAGES)
def test_pages_of_another_users_tenant_are_not_found(user, other_tenant, name):
    r = logged_in(user).get(reverse(f"portal:{name}", args=[other_tenant.id]), HTTP_ACCEPT="text/html")
    assert r.status_code == 404 and b"belongs to someone else" in r.content


@pytest.mark.parametrize("name,kwargs", TENANT_POSTS)
def test_forms_of_another_users_tenant_are_not_found(user, other_tenant, name, kwargs):
    r = logged_in(user).post(reverse(f"portal:{name}", kwargs={"tenant_id": other_tenant.id, **kwargs}))
    assert r.status_code == 404


@pytest.mark.parametrize("name,kwargs", TENANT_POSTS)
def test_every_form_requires_the_csrf_token(user, tenant, name, kwargs):
    r = logged_in(user, csrf=True).post(reverse(f"portal:{name}", kwargs={"tenant_id": tenant.id, **kwargs}))
    assert r.status_code == 403


@pytest.mark.parametrize("name", TENANT_PAGES)
def test_visitors_are_sent_to_the_login_page(client, tenant, name):
    r = client.get(reverse(f"portal:{name}", args=[tenant.id]))
    assert r.status_code == 302 and r["Location"].startswith("/portal/login?next=")


@pytest.mark.parametrize("name", TENANT_PAGES)
def test_every_page_renders_for_the_owner_with_a_complete_navigation(user, tenant, name):
    html = logged_in(user).get(reverse(f"portal:{name}", args=[tenant.id])).content.decode()
    for nav in ("domains", "credentials", "templates", "emails", "suppressions", "webhooks", "tenant_settings"):
        assert f'href="{reverse(f"portal:{nav}", args=[tenant.id])}"' in html
    assert 'aria-current="page"' in html
    assert unlabelled_controls(html) == []


class _Controls(HTMLParser):
    """Form controls without a label: neither inside a <label> nor named by <label for=...>
    nor carrying an aria-label."""

    def __init__(self):
        super().__init__()
        self.label_depth, self.label_for, self.controls = 0, set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "label":
            self.label_depth += 1
            if attrs.get("for"):
                self.label_for.add(attrs["for"])
        elif tag in ("input", "select", "textarea") and attrs.get("type") not in ("hidden", "submit"):
            if not self.label_depth and not attrs.get("aria-label"):
                self.controls.append(attrs.get("id") or attrs.get("name"))

    def handle_endtag(self, tag):
        if tag == "label":
            self.label_depth -= 1


def unlabelled_controls(html):
    parser = _Controls()
    parser.feed(html)
    return [c for c in parser.controls if c not in parser.label_for]
