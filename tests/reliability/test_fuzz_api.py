"""Every operation of our own OpenAPI schema (/api/v1/schema/) fuzzed with schemathesis through
Django's WSGI application (issue 14, item 5): valid and invalid inputs, with a JWT and with a
credential of a tenant the test owns, real object ids or generated ones. No answer may be a
5xx, and every 4xx must be the error envelope."""
import collections

import httpx
import hypothesis
import pytest
import responses
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, strategies as st
from schemathesis import GenerationMode

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

EXAMPLES_PER_OPERATION = 8  # per generation mode and id choice: ~1,400 requests in all


@pytest.fixture
def wsgi_app():
    """Django's real WSGI handler. Like Django's test client, keep it from closing the test's
    connection at the end of each request (which would abort the test transaction)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield WSGIHandler()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def no_outside_network(monkeypatch):
    """DNS providers are third parties: Cloudflare answers 'unauthorized', Google's endpoints
    are unreachable (Route 53 is moto, from the `worlds` fixture)."""
    def unauthorized(request):
        return httpx.Response(403, json={"success": False, "errors": [{"code": 9109, "message": "Invalid access token"}],
                                         "messages": [], "result": None})

    monkeypatch.setattr("domains.providers.cloudflare.make_http_client",
                        lambda: httpx.Client(transport=httpx.MockTransport(unauthorized)))
    with responses.RequestsMock(assert_all_requests_are_fired=False):
        yield


def envelope_problem(response):
    """None when a 4xx body is {"error": {"code": "UPPER_SNAKE", "message": "..."}}."""
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"not the error envelope: {response.text[:200]!r}"
    if not isinstance(error.get("code"), str) or not error["code"].isupper() or not isinstance(error.get("message"), str):
        return f"bad envelope: {error!r}"[:300]
    return None


def test_no_schema_operation_answers_5xx_or_an_error_outside_the_envelope(
    worlds, dns_server, wsgi_app, no_outside_network, settings, make_credential
):
    victim, _ = worlds  # "victim" is simply the tenant this test owns here
    settings.DISPATCH_WEBHOOK_ALLOW_PRIVATE = False
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", wsgi_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 40
    auth = {"JWT": f"Bearer {victim.jwt._credentials['HTTP_AUTHORIZATION'].split()[1]}",
            "credential": victim.basic._credentials["HTTP_AUTHORIZATION"]}
    problems, calls, statuses = [], [0], collections.Counter()
    # DELETE .../credentials/{id} with a real id must not revoke the credential the test signs in with.
    spare = make_credential(victim.tenant, label="fuzz target")

    for operation in operations:
        names = [p.name for p in operation.path_parameters]
        real_ids = {name: victim.ids[name] for name in names if name in victim.ids}
        if "credential_id" in real_ids:
            real_ids["credential_id"] = str(spare.id)
        strategies = [
            operation.as_strategy(generation_mode=mode, path_parameters=ids)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            for ids in ([real_ids, None] if real_ids else [None])
        ]

        @hypothesis.settings(max_examples=EXAMPLES_PER_OPERATION * len(strategies), deadline=None, database=None,
                             derandomize=True, suppress_health_check=list(HealthCheck))
        @hypothesis.given(case=st.one_of(strategies), principal=st.sampled_from(sorted(auth)))
        def run(case, principal):
            response = case.call(headers={"Authorization": auth[principal]})
            calls[0] += 1
            statuses[response.status_code // 100 * 100] += 1
            where = f"{operation.label} as {principal}: {response.status_code}\n  {case.as_curl_command()[:600]}"
            if response.status_code >= 500:
                problems.append(f"{where}\n  {response.text[:300]}")
            elif response.status_code >= 400 and (problem := envelope_problem(response)):
                problems.append(f"{where}\n  {problem}")

        run()

    print(f"schemathesis: {len(operations)} operations, {calls[0]} calls, statuses {dict(sorted(statuses.items()))}")
    assert calls[0] > 40 * EXAMPLES_PER_OPERATION
    assert not problems, f"{len(problems)} of {calls[0]} calls:\n" + "\n".join(problems[:30])
