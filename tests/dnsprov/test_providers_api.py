"""POST/GET /user/dns-providers, DELETE /user/dns-providers/{id}, GET /user/dns-providers/{id}/zones."""
import json

import pytest
import responses
from moto.core import set_initial_no_auth_action_count

from dispatch_site import crypto
from domains.models import DnsProvider

from .conftest import AWS_KEYS

URL = "/api/v1/user/dns-providers"


def connect_cloudflare(api, cloudflare_api, label="My Cloudflare"):
    response = api.post(URL, {"provider": "cloudflare", "label": label, "token": cloudflare_api.TOKEN}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["data"]


def assert_error(response, status, code):
    assert response.status_code == status, response.json()
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    return body["error"]


def test_connecting_cloudflare_checks_the_token_and_stores_it_encrypted(api, user, cloudflare_api):
    data = connect_cloudflare(api, cloudflare_api)

    assert set(data) == {"id", "provider", "label", "created_at"}
    assert (data["provider"], data["label"]) == ("cloudflare", "My Cloudflare")
    assert cloudflare_api.requests[0][:2] == ("GET", "/zones")
    row = DnsProvider.objects.get(pk=data["id"])
    assert row.owner == user
    blob = bytes(row.credentials_encrypted)
    assert cloudflare_api.TOKEN.encode() not in blob
    assert json.loads(crypto.decrypt_text(blob, f"dnsprovider:{user.id}:{row.id}")) == {"token": cloudflare_api.TOKEN}
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt_text(blob, f"dnsprovider:{user.id}:{DnsProvider().id}")


def test_a_rejected_token_is_a_clear_400_and_nothing_is_stored(api, cloudflare_api):
    response = api.post(URL, {"provider": "cloudflare", "label": "x", "token": "z" * 40}, format="json")

    error = assert_error(response, 400, "DNS_PROVIDER_AUTH_FAILED")
    assert "Zone:Read and DNS:Edit" in error["message"]
    assert not DnsProvider.objects.exists()


def test_connecting_route53_checks_the_keys(api, route53):
    response = api.post(URL, {"provider": "route53", "label": "My AWS", **AWS_KEYS, "region": "us-east-1"}, format="json")

    assert response.status_code == 201
    assert response.json()["data"]["provider"] == "route53"
    assert AWS_KEYS["secret_key"] not in response.content.decode()


@set_initial_no_auth_action_count(0)
def test_route53_keys_aws_does_not_know_are_refused(api, route53):
    response = api.post(URL, {"provider": "route53", "label": "x", "access_key": "AKIAUNKNOWN000000000",
                              "secret_key": "nope"}, format="json")

    assert_error(response, 400, "DNS_PROVIDER_AUTH_FAILED")
    assert not DnsProvider.objects.exists()


@pytest.mark.parametrize("as_object", [False, True], ids=["json-string", "json-object"])
def test_connecting_google_cloud_dns_with_a_service_account_key(api, user, cloud_dns, as_object):
    key = cloud_dns.service_account_json
    response = api.post(URL, {"provider": "gcp", "label": "My GCP",
                              "service_account_json": json.loads(key) if as_object else key}, format="json")

    assert response.status_code == 201, response.json()
    assert cloud_dns.token_grants == 1
    row = DnsProvider.objects.get(pk=response.json()["data"]["id"])
    stored = json.loads(crypto.decrypt_text(bytes(row.credentials_encrypted), f"dnsprovider:{user.id}:{row.id}"))
    assert stored["project_id"] == cloud_dns.project_id  # taken from the key when not given
    assert "PRIVATE KEY" not in response.content.decode()


@pytest.mark.parametrize("token_uri", [
    "http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/token",
    "http://127.0.0.1:8000/internal",
    "https://oauth2.googleapis.com.attacker.example/token",
    "http://oauth2.googleapis.com/token",
])
def test_a_service_account_key_cannot_send_the_token_request_elsewhere(api, cloud_dns, token_uri):
    # google-auth posts the signed grant to the key file's own token_uri: a tenant-written key
    # would make us POST to any URL (internal ones included) and echo the answer in the error.
    info = json.loads(cloud_dns.service_account_json)
    info["token_uri"] = token_uri
    requested = []
    cloud_dns.mock.add_callback(responses.POST, token_uri, callback=lambda request: requested.append(request) or (
        200, {"Content-Type": "application/json"}, json.dumps({"access_token": "stolen", "expires_in": 3599})))

    response = api.post(URL, {"provider": "gcp", "label": "x", "service_account_json": info}, format="json")

    error = assert_error(response, 400, "DNS_PROVIDER_AUTH_FAILED")
    assert "token_uri" in error["message"]
    assert requested == []
    assert not DnsProvider.objects.exists()


@pytest.mark.parametrize("body,field", [
    ({"provider": "cloudflare", "label": "x"}, "token"),
    ({"provider": "route53", "label": "x", "access_key": "AKIA"}, "secret_key"),
    ({"provider": "gcp", "label": "x"}, "service_account_json"),
])
def test_missing_credentials_are_named(api, body, field):
    error = assert_error(api.post(URL, body, format="json"), 400, "VALIDATION_ERROR")
    assert field in error["details"]


def test_an_unknown_provider_is_refused(api):
    error = assert_error(api.post(URL, {"provider": "godaddy", "label": "x", "token": "t"}, format="json"), 400, "VALIDATION_ERROR")
    assert "provider" in error["details"]


def test_the_list_shows_only_my_providers_and_no_secrets(api, other_api, cloudflare_api):
    mine = connect_cloudflare(api, cloudflare_api, "mine")
    connect_cloudflare(other_api, cloudflare_api, "theirs")

    response = api.get(URL)

    assert response.status_code == 200
    assert response.json()["data"] == [mine]
    assert cloudflare_api.TOKEN not in response.content.decode()


def test_zones_are_listed_from_the_provider(api, cloudflare_api):
    first, second = cloudflare_api.add_zone("example.com"), cloudflare_api.add_zone("example.org")
    provider = connect_cloudflare(api, cloudflare_api)

    response = api.get(f"{URL}/{provider['id']}/zones")

    assert response.status_code == 200
    assert response.json()["data"] == [{"id": first, "name": "example.com"}, {"id": second, "name": "example.org"}]


def test_route53_zones_are_listed_with_their_bare_ids(api, route53):
    hosted = route53.create_hosted_zone(Name="example.com", CallerReference="1")["HostedZone"]
    provider = api.post(URL, {"provider": "route53", "label": "aws", **AWS_KEYS}, format="json").json()["data"]

    response = api.get(f"{URL}/{provider['id']}/zones")

    assert response.json()["data"] == [{"id": hosted["Id"].rsplit("/", 1)[-1], "name": "example.com"}]


def test_google_cloud_dns_zones_are_listed_by_managed_zone_name(api, cloud_dns):
    cloud_dns.add_zone("example-com", "example.com.")
    provider = api.post(URL, {"provider": "gcp", "label": "gcp", "service_account_json": cloud_dns.service_account_json,
                              "project_id": cloud_dns.project_id}, format="json").json()["data"]

    response = api.get(f"{URL}/{provider['id']}/zones")

    assert response.json()["data"] == [{"id": "example-com", "name": "example.com"}]


def test_provider_errors_while_listing_zones_use_the_envelope(api, cloudflare_api):
    provider = connect_cloudflare(api, cloudflare_api)
    # The SDK retries a 429 twice (short backoff) before giving up: three refusals in a row.
    cloudflare_api.fail_next.extend([(429, [{"code": 971, "message": "Please wait"}], {})] * 3)

    response = api.get(f"{URL}/{provider['id']}/zones")

    assert_error(response, 429, "DNS_PROVIDER_RATE_LIMITED")
    assert int(response["Retry-After"]) > 0


def test_another_users_provider_is_not_found(api, other_api, cloudflare_api):
    theirs = connect_cloudflare(other_api, cloudflare_api)

    assert_error(api.get(f"{URL}/{theirs['id']}/zones"), 404, "DNS_PROVIDER_NOT_FOUND")
    assert_error(api.delete(f"{URL}/{theirs['id']}"), 404, "DNS_PROVIDER_NOT_FOUND")
    assert DnsProvider.objects.filter(pk=theirs["id"]).exists()


def test_disconnecting_deletes_the_provider(api, cloudflare_api):
    provider = connect_cloudflare(api, cloudflare_api)

    assert api.delete(f"{URL}/{provider['id']}").status_code == 200
    assert not DnsProvider.objects.filter(pk=provider["id"]).exists()
    assert_error(api.delete(f"{URL}/{provider['id']}"), 404, "DNS_PROVIDER_NOT_FOUND")


def test_a_tenant_credential_cannot_use_provider_endpoints(cred_api):
    assert_error(cred_api.get(URL), 403, "FORBIDDEN")


def test_anonymous_requests_are_refused(client):
    assert client.get(URL).status_code == 401
