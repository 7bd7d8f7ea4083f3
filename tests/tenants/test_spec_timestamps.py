"""Every point in time the API shows has the spec's one shape: "2026-03-29T10:00:05Z"
(UTC, whole seconds, Z) or null — never a fraction that comes and goes with the clock."""
import re

import pytest

from tests.sending.conftest import make_verified_domain, message_payload

pytestmark = pytest.mark.django_db

SPEC_TIMESTAMP = re.compile(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\Z")


def timestamps(value, path=""):
    """(path, value) of every `*_at` / `period_*` field, at any depth."""
    if isinstance(value, dict):
        for key, inner in value.items():
            where = f"{path}.{key}"
            if key.endswith("_at") or key in ("period_start", "period_end"):
                yield where, inner
            else:
                yield from timestamps(inner, where)
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from timestamps(inner, f"{path}[{index}]")


def test_every_timestamp_in_the_api_has_the_specs_shape(api, cred_api, tenant):
    base = f"/api/v1/dispatch/tenants/{tenant.id}"
    make_verified_domain(tenant, "example.com")
    sent = cred_api.post(f"{base}/send", message_payload(), format="json")
    assert sent.status_code == 200, sent.content
    email_id = sent.json()["data"]["id"]
    assert api.post(f"{base}/suppressions", {"email": "gone@example.org"}, format="json").status_code == 201
    assert api.post(f"{base}/templates", {"name": "W", "subject": "Hi {{n}}", "html_body": "<p>{{n}}</p>"},
                    format="json").status_code == 201
    assert api.post(f"{base}/webhooks", {"url": "https://1.1.1.1/hook", "events": ["delivered"]},
                    format="json").status_code == 201

    responses = [
        api.get("/api/v1/dispatch/tenants"), api.get(base), api.get(f"{base}/usage"), api.get(f"{base}/queue"),
        api.get(f"{base}/credentials"), api.post(f"{base}/credentials", {"label": "x"}, format="json"),
        api.get(f"{base}/emails"), api.get(f"{base}/emails/{email_id}"),
        api.get(f"{base}/suppressions"), api.get(f"{base}/templates"), api.get(f"{base}/webhooks"),
        api.get(f"{base}/domains"), api.post(f"{base}/domains", {"domain": "other.example"}, format="json"),
    ]
    seen = []
    for response in responses:
        assert response.status_code in (200, 201), response.content
        seen += [(response.request["PATH_INFO"] + where, value) for where, value in timestamps(response.json())]

    wrong = [(where, value) for where, value in seen if value is not None and not SPEC_TIMESTAMP.match(value)]
    assert wrong == []
    filled = {where.rsplit(".", 1)[-1] for where, value in seen if value is not None}
    # The check really looked at timestamps written from the clock (they carry microseconds).
    assert {"created_at", "updated_at", "queued_at", "expires_at", "last_used_at", "next_attempt_at",
            "verified_at", "period_start"} <= filled


def test_another_tenants_timestamps_are_not_reachable(api, other_tenant):
    response = api.get(f"/api/v1/dispatch/tenants/{other_tenant.id}/usage")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "TENANT_NOT_FOUND"
