"""A tenant chooses the webhook URL: it must never make us connect into our own network."""
import pytest

from dispatch_site.errors import ValidationFailed
from webhooks import http_client, services
from webhooks.models import Delivery, Endpoint

pytestmark = pytest.mark.django_db

PRIVATE_LITERAL_URLS = [
    "http://127.0.0.1/hook",
    "http://127.0.0.1:8000/hook",
    "http://[::1]/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/",
    "http://192.168.1.10/",
    "http://100.64.0.1/",
    "http://0.0.0.0/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[fe80::1]/",
    "http://2130706433/",  # decimal 127.0.0.1
    "http://0177.0.0.1/",  # octal
    "http://0x7f.1/",  # hex, short form
    "http://127.1/",
    "http://017700000001/",
    "https://[::1]:8443/",
    "http://\uff11\uff12\uff17.0.0.1/",  # full-width digits: IDNA turns them into 127.0.0.1
    "http://0/",
    "http://[fe80::1%25eth0]/",
    "http://localhost:8000/",
    "http://api.localhost/",
]


@pytest.mark.parametrize("url", PRIVATE_LITERAL_URLS)
def test_registering_a_non_public_ip_literal_is_refused(tenant, url):
    with pytest.raises(ValidationFailed) as caught:
        services.endpoint_create(tenant=tenant, url=url, events=["delivered"])
    assert "not a public address" in caught.value.message
    assert not Endpoint.objects.exists()
    assert http_client.post(url, body=b"{}", headers={}).error.startswith("refused:")


@pytest.mark.parametrize("url,reason", [
    ("ftp://hooks.example.com/", "http:// or https://"),
    ("file:///etc/passwd", "http:// or https://"),
    ("gopher://hooks.example.com/", "http:// or https://"),
    ("//hooks.example.com/", "http:// or https://"),
    ("https://user:pass@hooks.example.com/", "credentials"),
    ("https://token@hooks.example.com/", "credentials"),
    ("https://hooks.example.com:99999/", "malformed"),
    ("https:///path", "no host"),
    ("http://%31%32%37.0.0.1/", "not a valid domain name"),
    ("http://bad..example.com/", "not a valid domain name"),
    ("http://-bad.example.com/", "not a valid domain name"),
    ("https://hooks.example.com/a b", "whitespace"),
    ("https://hooks.example.com/\r\nX-Injected: 1", "whitespace"),
    ("https://hooks.example.com/" + "a" * 2100, "2048"),
])
def test_malformed_or_unsafe_urls_are_refused(tenant, url, reason):
    with pytest.raises(ValidationFailed) as caught:
        services.endpoint_create(tenant=tenant, url=url, events=["delivered"])
    assert reason in caught.value.message


def test_public_urls_and_names_are_accepted_at_registration(tenant):
    # Names are not resolved at registration (they are checked at every delivery).
    urls = ("https://hooks.example.com/dispatch", "http://8.8.8.8/x", "https://[2606:4700:4700::1111]/",
            "https://Bücher.example/in?x=1", "https://_hooks.example.com:8443")
    for url in urls:
        services.endpoint_create(tenant=tenant, url=url, events=["delivered"])
    assert Endpoint.objects.count() == len(urls)
    target = http_client.parse_target("https://Bücher.example/in?x=1#frag")
    assert (target.host, target.port, target.path) == ("xn--bcher-kva.example", 443, "/in?x=1")
    assert http_client.parse_target("http://h.example/ünï%20code?q=é&r=%2F").path == "/%C3%BCn%C3%AF%20code?q=%C3%A9&r=%2F"


def _endpoint_allowed_at_registration(tenant, url, settings):
    """An endpoint saved while private addresses were allowed (or a name that later rebinds)."""
    settings.DISPATCH_WEBHOOK_ALLOW_PRIVATE = True
    endpoint, _ = services.endpoint_create(tenant=tenant, url=url, events=["delivered"])
    settings.DISPATCH_WEBHOOK_ALLOW_PRIVATE = False
    return endpoint


def _deliver(tenant):
    event = services.event_record(tenant=tenant, event="delivered", payload={"recipient": "a@example.org"})
    (delivery,) = Delivery.objects.filter(event=event)
    return services.delivery_attempt(delivery_id=delivery.pk)


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "2130706433", "0177.0.0.1", "[::ffff:127.0.0.1]"])
def test_delivery_to_a_loopback_literal_is_refused_and_never_connects(tenant, receiver, settings, host):
    _endpoint_allowed_at_registration(tenant, receiver.url(host=host), settings)
    delivery = _deliver(tenant)
    assert delivery.status == "failed" and delivery.last_response_code is None
    assert delivery.last_error.startswith("refused:") and "non-public" in delivery.last_error
    assert receiver.requests == []


def test_link_local_metadata_address_is_refused_at_delivery(settings):
    settings.DISPATCH_WEBHOOK_ALLOW_PRIVATE = False
    result = http_client.post("http://169.254.169.254/latest/meta-data/", body=b"{}", headers={})
    assert result.status is None and "non-public address (169.254.169.254)" in result.error


def test_a_name_resolving_to_a_private_address_is_refused(tenant, dns_server, receiver, settings):
    dns_server.add("internal.hooks.test", "A", "10.0.0.1")
    endpoint, _ = services.endpoint_create(
        tenant=tenant, url=f"http://internal.hooks.test:{receiver.port}/", events=["delivered"]
    )
    delivery = _deliver(tenant)
    assert "non-public address (10.0.0.1)" in delivery.last_error
    assert delivery.status == "failed" and delivery.next_attempt_at is not None  # DNS may be fixed: retried
    assert Endpoint.objects.get(pk=endpoint.pk).enabled is True


def test_a_name_with_any_private_address_is_refused(dns_server):
    dns_server.add("mixed.hooks.test", "A", "93.184.215.14")
    dns_server.add("mixed.hooks.test", "AAAA", "::1")
    result = http_client.post("http://mixed.hooks.test/", body=b"{}", headers={})
    assert result.status is None and "non-public address (::1)" in result.error


def test_a_name_that_rebinds_to_loopback_after_registration_is_refused(tenant, dns_server, receiver):
    dns_server.add("rebind.hooks.test", "A", "93.184.215.14")
    services.endpoint_create(tenant=tenant, url=f"http://rebind.hooks.test:{receiver.port}/", events=["delivered"])
    dns_server.remove("rebind.hooks.test")
    dns_server.add("rebind.hooks.test", "A", "127.0.0.1")
    delivery = _deliver(tenant)
    assert "non-public address (127.0.0.1)" in delivery.last_error
    assert receiver.requests == []


def test_the_connection_goes_to_the_address_that_was_checked(tenant, dns_server, receiver, allow_private):
    """One lookup per attempt, through DISPATCH_DNS_NAMESERVERS; the socket goes to its answer."""
    dns_server.add("hook.hooks.test", "A", "127.0.0.1")
    services.endpoint_create(tenant=tenant, url=f"http://hook.hooks.test:{receiver.port}/in", events=["delivered"])
    before = len([q for q in dns_server.queries if q[0].startswith("hook.hooks.test") and q[1] == "A"])

    delivery = _deliver(tenant)

    assert delivery.status == "succeeded"
    (request,) = receiver.requests
    assert request.headers["Host"] == f"hook.hooks.test:{receiver.port}" and request.path == "/in"
    lookups = [q for q in dns_server.queries if q[0].startswith("hook.hooks.test") and q[1] == "A"]
    assert len(lookups) - before == 1


def test_an_unresolvable_name_is_a_failed_attempt(tenant, dns_server):
    services.endpoint_create(tenant=tenant, url="https://nowhere.hooks.test/", events=["delivered"])
    delivery = _deliver(tenant)
    assert delivery.status == "failed" and "does not resolve" in delivery.last_error


def test_with_allow_private_a_loopback_receiver_works(tenant, receiver, allow_private):
    for url in (receiver.url(), receiver.url(host="[::ffff:127.0.0.1]"), receiver.url(host="2130706433")):
        Endpoint.objects.all().delete()
        services.endpoint_create(tenant=tenant, url=url, events=["delivered"])
        assert _deliver(tenant).status == "succeeded"
    assert len(receiver.requests) == 3


def test_allow_private_is_off_by_default():
    from django.conf import settings

    assert settings.DISPATCH_WEBHOOK_ALLOW_PRIVATE is False
