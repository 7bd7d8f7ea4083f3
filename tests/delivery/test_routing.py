"""MX routing against the loopback DNS server: preference order, null MX, implicit MX,
the SSRF guard, smarthost, TTL cache."""
import pytest

from sending.delivery import routing
from sending.delivery.routing import RouteError


@pytest.fixture
def public_dns(dns_server, settings):
    settings.DISPATCH_OUTBOUND_ALLOW_PRIVATE = False
    settings.DISPATCH_OUTBOUND_SMTP_PORT = 25
    return dns_server


def test_it_orders_mx_hosts_by_preference_and_keeps_each_hosts_addresses_together(public_dns):
    public_dns.add("mail.test", "MX", "20 backup.mail.test.")
    public_dns.add("mail.test", "MX", "10 primary.mail.test.")
    public_dns.add("primary.mail.test", "A", "93.184.216.34")
    public_dns.add("primary.mail.test", "AAAA", "2606:2800:220:1::1")
    public_dns.add("backup.mail.test", "A", "93.184.216.35")

    targets = routing.route("Mail.Test")

    assert [(t.host, t.address, t.port) for t in targets] == [
        ("primary.mail.test", "93.184.216.34", 25),
        ("primary.mail.test", "2606:2800:220:1::1", 25),
        ("backup.mail.test", "93.184.216.35", 25),
    ]


def test_it_shuffles_hosts_of_equal_preference(public_dns):
    for name, address in (("a.mx.test", "93.184.216.1"), ("b.mx.test", "93.184.216.2")):
        public_dns.add("spread.test", "MX", f"10 {name}.")
        public_dns.add(name, "A", address)
    firsts = {routing.route("spread.test")[0].host for _ in range(40)}
    assert firsts == {"a.mx.test", "b.mx.test"}


def test_null_mx_is_a_permanent_failure(public_dns):
    public_dns.add("nomail.test", "MX", "0 .")
    with pytest.raises(RouteError) as error:
        routing.route("nomail.test")
    assert error.value.permanent
    assert (error.value.code, error.value.enhanced) == (556, "5.1.10")


def test_without_mx_the_domains_own_address_is_used(public_dns):
    public_dns.add("bare.test", "A", "93.184.216.40")
    assert [(t.host, t.address) for t in routing.route("bare.test")] == [("bare.test", "93.184.216.40")]


def test_a_domain_that_does_not_exist_is_permanent_and_a_dns_failure_is_temporary(public_dns):
    with pytest.raises(RouteError) as missing:
        routing.route("missing.test")
    assert missing.value.permanent and missing.value.enhanced == "5.1.2"

    public_dns.fail("broken.test", "servfail")
    with pytest.raises(RouteError) as broken:
        routing.route("broken.test")
    assert not broken.value.permanent


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "100.64.0.1", "::1", "::ffff:127.0.0.1", "fd00::1"])
def test_mx_hosts_on_non_public_addresses_are_refused(public_dns, address):
    public_dns.add("evil.test", "MX", "10 mx.evil.test.")
    public_dns.add("mx.evil.test", "AAAA" if ":" in address else "A", address)
    with pytest.raises(RouteError) as error:
        routing.route("evil.test")
    assert error.value.permanent
    assert "non-public" in error.value.text


def test_non_public_hosts_are_skipped_when_a_public_one_exists(public_dns):
    public_dns.add("mixed.test", "MX", "5 inside.mixed.test.")
    public_dns.add("mixed.test", "MX", "10 outside.mixed.test.")
    public_dns.add("inside.mixed.test", "A", "192.168.1.5")
    public_dns.add("outside.mixed.test", "A", "93.184.216.50")
    assert [t.address for t in routing.route("mixed.test")] == ["93.184.216.50"]


def test_private_mx_is_allowed_when_configured(public_dns, settings):
    settings.DISPATCH_OUTBOUND_ALLOW_PRIVATE = True
    public_dns.add("lab.test", "MX", "10 mx.lab.test.")
    public_dns.add("mx.lab.test", "A", "127.0.0.1")
    assert [t.address for t in routing.route("lab.test")] == ["127.0.0.1"]


@pytest.mark.parametrize("domain", ["[127.0.0.1]", "2130706433", "0177.0.0.1", "127.1"])
def test_address_literal_domains_are_never_routed(public_dns, domain, settings):
    settings.DISPATCH_OUTBOUND_ALLOW_PRIVATE = True
    with pytest.raises(RouteError) as error:
        routing.route(domain)
    assert error.value.permanent


def test_answers_are_cached_for_their_ttl(public_dns):
    public_dns.add("cached.test", "MX", "10 mx.cached.test.", ttl=300)
    public_dns.add("mx.cached.test", "A", "93.184.216.60", ttl=300)
    routing.route("cached.test")
    asked = len(public_dns.queries)
    public_dns.remove("mx.cached.test")
    assert routing.route("cached.test")[0].address == "93.184.216.60"
    assert len(public_dns.queries) == asked


def test_an_expired_answer_is_asked_again(public_dns, monkeypatch):
    public_dns.add("short.test", "MX", "10 mx.short.test.", ttl=1)
    public_dns.add("mx.short.test", "A", "93.184.216.61", ttl=1)
    routing.route("short.test")
    public_dns.remove("mx.short.test")
    public_dns.add("mx.short.test", "A", "93.184.216.62", ttl=1)
    clock = routing.time.monotonic() + 2
    monkeypatch.setattr(routing.time, "monotonic", lambda: clock)
    assert routing.route("short.test")[0].address == "93.184.216.62"


def test_smarthost_overrides_mx(public_dns, settings):
    settings.DISPATCH_SMARTHOST = "relay.internal:2526"
    assert [(t.host, t.port) for t in routing.route("anything.test")] == [("relay.internal", 2526)]
    assert public_dns.queries == []
