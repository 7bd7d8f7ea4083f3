"""Isolation sweep (issue 14, item 8). Every API route is found by walking Django's URL
resolver — nothing is listed by hand — and called with every method its view has, by the
wrong principal, for the victim's objects: another user's JWT gets 404, another tenant's
credential gets 403 CREDENTIAL_MISMATCH, and no response ever carries the victim's data.
A new endpoint is swept automatically; one with a URL parameter the sweep does not know
fails the test until an object of that kind is added to tests/reliability/world.py."""
import itertools
import json
import re

import pytest
from django.urls import URLResolver, get_resolver

from .world import tenant_state

pytestmark = pytest.mark.django_db

HANDLERS = ("get", "post", "put", "patch", "delete")
PARAM_RE = re.compile(r"<(?:(\w+):)?(\w+)>")
# Routes outside tenants and users, reachable without or before any principal.
PUBLIC_ROUTES = {"api/v1/schema/", "api/v1/docs/", "api/v1/auth/register", "api/v1/auth/token", "api/v1/auth/token/refresh"}


def walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern


def view_methods(pattern):
    view = getattr(pattern.callback, "view_class", None) or getattr(pattern.callback, "cls", None)
    if view is None:  # a function view: it may answer anything
        return list(HANDLERS)
    return [m for m in HANDLERS if hasattr(view, m)]


def routes(prefix):
    """(route, [parameter names], [methods]) for every URL pattern under `prefix`."""
    found = []
    for route, pattern in walk(get_resolver().url_patterns):
        if route.startswith(prefix):
            found.append((route, [name for _, name in PARAM_RE.findall(route)], view_methods(pattern)))
    return found


def fill(route, values):
    return "/" + PARAM_RE.sub(lambda m: values[m.group(2)], route)


def write_body(victim, attacker):
    """One body with a valid-looking value for every field our write endpoints read, pointing
    at the victim's objects wherever a body can name an object."""
    return {
        "tenant_name": "hijacked", "label": "hijacked", "name": "hijacked", "subject": "hijacked",
        "html_body": "<p>hijacked</p>", "text_body": "hijacked", "variables": {"name": "x"},
        "template_variables": {"name": "x"}, "url": "http://127.0.0.1:9/hijacked", "events": ["delivered"],
        "enabled": False, "email": "hijacked@example.org", "reason": "hijacked", "domain": "hijacked.example.net",
        "from": f"app@{attacker.marker}.example.com", "to": ["x@example.org"],
        "template_id": victim.ids["template_id"], "provider_id": victim.ids["provider_id"], "zone_id": "Z1",
        "messages": [{"from": f"app@{attacker.marker}.example.com", "to": ["x@example.org"],
                      "template_id": victim.ids["template_id"]}],
    }


def call(client, method, url, body):
    if method in ("post", "put", "patch"):
        return getattr(client, method)(url, body, format="json")
    return getattr(client, method)(url)


def leaks(response, victim, supplied):
    """The victim's markers and ids found in the response, except ids the caller supplied."""
    text = response.content.decode("utf-8", "replace") + json.dumps(dict(response.headers))
    return sorted(s for s in victim.secrets_and_ids - supplied if s in text)


class Sweep:
    def __init__(self, victim, attacker):
        self.victim, self.attacker = victim, attacker
        self.body = write_body(victim, attacker)
        self.failures, self.calls = [], 0

    def check(self, principal, client, method, route, values, expect):
        url = fill(route, values)
        response = call(client, method, url, self.body)
        self.calls += 1
        what = f"{principal} {method.upper()} {url} -> {response.status_code}"
        supplied = set(values.values()) | {v for v in self.body.values() if isinstance(v, str)}
        if leaked := leaks(response, self.victim, supplied):
            self.failures.append(f"{what}: leaks {leaked}: {response.content[:300]!r}")
        if expect is None:
            return
        if 200 <= response.status_code < 300:
            self.failures.append(f"{what}: 2xx for another tenant's object: {response.content[:300]!r}")
            return
        status, codes = expect
        try:
            code = response.json()["error"]["code"]
        except (ValueError, KeyError, TypeError):
            self.failures.append(f"{what}: not the error envelope: {response.content[:200]!r}")
            return
        if response.status_code != status or (codes and code not in codes):
            self.failures.append(f"{what} {code}: expected {status} {codes or ''}")


def test_the_sweep_knows_every_url_parameter_of_the_api(worlds):
    victim, _ = worlds
    unknown = {(route, name) for route, params, _ in routes("api/v1/") for name in params if name not in victim.ids}
    assert not unknown, f"add an object of this kind to tests/reliability/world.py: {sorted(unknown)}"


def test_another_principal_never_reaches_a_tenants_objects(worlds):
    victim, attacker = worlds
    before = tenant_state(victim)
    sweep = Sweep(victim, attacker)
    tenant_routes = [r for r in routes("api/v1/") if "tenant_id" in r[1]]
    user_routes = [r for r in routes("api/v1/user/")]
    assert len(tenant_routes) >= 20 and user_routes  # the walk found the API

    for route, params, methods in tenant_routes:
        objects = [p for p in params if p != "tenant_id"]
        for method in methods + ["options"]:
            # The victim's tenant in the URL: another user's JWT -> 404, another credential -> 403.
            sweep.check("attacker JWT", attacker.jwt, method, route, victim.ids, (404, None))
            sweep.check("attacker credential", attacker.basic, method, route, victim.ids, (403, {"CREDENTIAL_MISMATCH"}))
        # The attacker's own tenant with the victim's objects, one at a time and all at once.
        combos = [[p] for p in objects] + ([objects] if len(objects) > 1 else [])
        for method, foreign in itertools.product(methods, combos):
            values = {**attacker.ids, **{p: victim.ids[p] for p in foreign}}
            sweep.check("attacker JWT (own tenant)", attacker.jwt, method, route, values, (404, None))
            sweep.check("attacker credential (own tenant)", attacker.basic, method, route, values,
                        (404, None) if not _jwt_only(attacker, method, route) else (403, None))

    for route, params, methods in user_routes:
        for method in methods:
            values = {**attacker.ids, **victim.ids}
            sweep.check("attacker JWT", attacker.jwt, method, route, values, (404, None) if params else None)
            sweep.check("attacker credential", attacker.basic, method, route, values, (403, {"FORBIDDEN"}))

    print(f"\nisolation sweep (API): {len(tenant_routes) + len(user_routes)} routes, {sweep.calls} calls")
    assert not sweep.failures, f"{len(sweep.failures)} of {sweep.calls} calls:\n" + "\n".join(sweep.failures)
    assert tenant_state(victim) == before
    assert sweep.calls > 150


def _jwt_only(attacker, method, route):
    """Endpoints that refuse credentials answer 403 before looking at any object."""
    response = call(attacker.basic, method, fill(route, attacker.ids), {})
    return response.status_code == 403 and response.json()["error"]["code"] == "FORBIDDEN"


def test_own_endpoints_never_show_another_tenants_data(worlds):
    """Everything the attacker may legitimately call (own tenant, lists, global routes, with
    the victim's ids in the body) answers without a trace of the victim."""
    victim, attacker = worlds
    before = tenant_state(victim)
    sweep = Sweep(victim, attacker)
    for route, params, methods in routes("api/v1/"):
        if set(params) - {"tenant_id"} or route in PUBLIC_ROUTES:
            continue
        for method, (principal, client) in itertools.product(methods, [("JWT", attacker.jwt), ("credential", attacker.basic)]):
            sweep.check(f"attacker {principal} (own)", client, method, route, attacker.ids, None)
    assert not sweep.failures, "\n".join(sweep.failures)
    assert tenant_state(victim) == before
    assert victim.marker not in repr(tenant_state(attacker))


def test_objects_named_in_a_body_must_belong_to_the_tenant(worlds):
    victim, attacker = worlds
    base = f"/api/v1/dispatch/tenants/{attacker.tenant.id}"
    send = {"from": f"app@{attacker.marker}.example.com", "to": ["x@example.org"], "template_id": victim.ids["template_id"]}
    for client in (attacker.jwt, attacker.basic):
        r = client.post(f"{base}/send", send, format="json")
        assert r.status_code == 404 and r.json()["error"]["code"] == "TEMPLATE_NOT_FOUND"
        r = client.post(f"{base}/send-bulk", {"messages": [send]}, format="json")
        assert r.status_code == 200 and r.json()["data"]["results"][0]["code"] == "TEMPLATE_NOT_FOUND"
    r = attacker.jwt.post(f"{base}/domains/{attacker.ids['domain_id']}/dns-setup",
                          {"provider_id": victim.ids["provider_id"], "zone_id": "Z1"}, format="json")
    assert r.status_code == 404, r.content
    assert victim.marker not in r.content.decode()


# --- portal pages ------------------------------------------------------------------------------
PORTAL_ALIASES = {"email_id": "log_id"}  # portal URL parameter -> the object kind in world.ids


def portal_routes():
    """(route, params, methods, {slug parameter: values}) for every portal page with an object
    in its URL (account-level pages without one are covered by the 'own pages' test)."""
    found = []
    for route, pattern in walk(get_resolver().url_patterns):
        if not route.startswith("portal/"):
            continue
        view = getattr(pattern.callback, "view_class", None)
        params = [name for _, name in PARAM_RE.findall(route)]
        slugs = {name: list(getattr(view, "ACTIONS", ())) for conv, name in PARAM_RE.findall(route) if conv == "slug"}
        found.append((route, params, view_methods(pattern), slugs))
    return found


def portal_form(victim, attacker):
    return {key: value for key, value in write_body(victim, attacker).items() if isinstance(value, (str, bool))} | {
        "events": "delivered", "confirm": "yes"}


def portal_fill(route, values, slugs):
    def value(match):
        name = match.group(2)
        return slugs[name] if name in slugs else values[PORTAL_ALIASES.get(name, name)]

    return "/" + PARAM_RE.sub(value, route)


def refused_back_home(response, method, attacker):
    """A POST button may answer a foreign object by redirecting to the user's own tenant with
    an error message (nothing changed: checked by the caller), instead of a 404."""
    location = response.headers.get("Location", "")
    return method == "post" and response.status_code == 302 and location.startswith(f"/portal/t/{attacker.tenant.id}/")


def test_the_sweep_knows_every_url_parameter_of_the_portal(worlds):
    victim, _ = worlds
    unknown = sorted(
        (route, name) for route, params, _, slugs in portal_routes() for name in params
        if PORTAL_ALIASES.get(name, name) not in victim.ids and not slugs.get(name)
    )
    assert not unknown, f"add an object of this kind (or an ACTIONS list) for: {unknown}"


def test_another_user_never_reaches_a_tenants_portal_pages(worlds, client):
    victim, attacker = worlds
    client.force_login(attacker.user)
    before = tenant_state(victim)
    form = portal_form(victim, attacker)
    failures, calls = [], 0
    object_routes = [r for r in portal_routes() if set(r[1]) - set(r[3])]
    assert len(object_routes) >= 15
    for route, params, methods, slugs in object_routes:
        objects = [PORTAL_ALIASES.get(p, p) for p in params if p not in slugs and p != "tenant_id"]
        # The victim's tenant, then the attacker's own tenant with each of the victim's objects.
        variants = [dict(victim.ids)] + [{**attacker.ids, p: victim.ids[p]} for p in objects]
        for values, method in itertools.product(variants, methods):
            for slug_values in itertools.product(*slugs.values()) if slugs else [()]:
                url = portal_fill(route, values, dict(zip(slugs, slug_values)))
                response = client.post(url, form) if method == "post" else getattr(client, method)(url)
                calls += 1
                what = f"{method.upper()} {url} -> {response.status_code}"
                supplied = set(values.values())
                if leaked := leaks(response, victim, supplied):
                    failures.append(f"{what}: leaks {leaked}")
                elif response.status_code != 404 and not refused_back_home(response, method, attacker):
                    failures.append(f"{what}: expected 404")
    print(f"\nisolation sweep (portal): {len(object_routes)} pages, {calls} calls")
    assert not failures, f"{len(failures)} of {calls} calls:\n" + "\n".join(failures)
    assert tenant_state(victim) == before
    assert calls > 50


def test_own_portal_pages_never_show_another_tenants_data(worlds, client):
    victim, attacker = worlds
    client.force_login(attacker.user)
    failures = []
    for route, params, methods, slugs in portal_routes():
        if "get" not in methods or slugs or route == "portal/logout":
            continue
        url = portal_fill(route, attacker.ids, {})
        response = client.get(url, follow=True)
        if response.status_code != 200:
            failures.append(f"GET {url} -> {response.status_code}")
        elif leaked := leaks(response, victim, set()):
            failures.append(f"GET {url}: leaks {leaked}")
    assert not failures, "\n".join(failures)
