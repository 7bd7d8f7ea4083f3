"""The loopback DNS test server and domains.dns.make_resolver(), which every DNS-dependent
test in the suite relies on."""
import time

import dns.message
import dns.nameserver
import dns.query
import dns.rcode
import dns.resolver
import pytest

from domains.dns import make_resolver


def txt_strings(answer):
    return sorted(tuple(s.decode() for s in r.strings) for r in answer)


def test_resolver_uses_configured_nameserver_and_timeout(settings):
    settings.DISPATCH_DNS_NAMESERVERS = [("127.0.0.1", 5353), ("::1", 53)]
    settings.DISPATCH_DNS_TIMEOUT = 3.5
    resolver = make_resolver()
    assert [(ns.address, ns.port) for ns in resolver.nameservers] == [("127.0.0.1", 5353), ("::1", 53)]
    assert resolver.lifetime == 3.5 and resolver.timeout <= 3.5
    assert resolver.cache is None


def test_it_answers_a_aaaa_mx_cname(dns_server):
    dns_server.add("example.com", "A", "192.0.2.10")
    dns_server.add("example.com", "AAAA", "2001:db8::10")
    dns_server.add("example.com", "MX", "10 mx.example.com.")
    dns_server.add("example.com", "MX", "20 mx2.example.com")
    dns_server.add("www.example.com", "CNAME", "example.com.")
    resolver = make_resolver()
    assert [r.address for r in resolver.resolve("example.com", "A")] == ["192.0.2.10"]
    assert [r.address for r in resolver.resolve("EXAMPLE.com.", "AAAA")] == ["2001:db8::10"]
    mx = sorted((r.preference, r.exchange.to_text()) for r in resolver.resolve("example.com", "MX"))
    assert mx == [(10, "mx.example.com."), (20, "mx2.example.com.")]
    answer = resolver.resolve("www.example.com", "A")
    assert answer.canonical_name.to_text() == "example.com."
    assert [r.address for r in answer] == ["192.0.2.10"]


def test_it_answers_multi_string_and_several_txt_records(dns_server):
    dns_server.add("example.com", "TXT", ["v=spf1 ", "include:mail.test ~all"])
    dns_server.add("example.com", "TXT", "google-site-verification=abc")
    long_value = "p=" + "A" * 600
    dns_server.add("sel._domainkey.example.com", "TXT", long_value)
    resolver = make_resolver()
    assert txt_strings(resolver.resolve("example.com", "TXT")) == [
        ("google-site-verification=abc",), ("v=spf1 ", "include:mail.test ~all")
    ]
    [record] = resolver.resolve("sel._domainkey.example.com", "TXT")
    assert [len(s) for s in record.strings] == [255, 255, 92]
    assert b"".join(record.strings).decode() == long_value


def test_unknown_name_is_nxdomain_and_missing_type_is_nodata(dns_server):
    dns_server.add("sel._domainkey.example.com", "TXT", "x")
    resolver = make_resolver()
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("nope.example.com", "TXT")
    with pytest.raises(dns.resolver.NoAnswer):
        resolver.resolve("sel._domainkey.example.com", "A")
    with pytest.raises(dns.resolver.NoAnswer):  # empty non-terminal exists
        resolver.resolve("_domainkey.example.com", "TXT")


def test_remove_and_clear(dns_server):
    dns_server.add("example.com", "TXT", "a").add("example.com", "A", "192.0.2.1")
    resolver = make_resolver()
    dns_server.remove("example.com", "TXT")
    with pytest.raises(dns.resolver.NoAnswer):
        resolver.resolve("example.com", "TXT")
    assert resolver.resolve("example.com", "A")
    dns_server.remove("example.com")
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("example.com", "A")
    dns_server.add("example.com", "A", "192.0.2.1").clear()
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("example.com", "A")


def test_servfail_and_timeout(dns_server, settings):
    settings.DISPATCH_DNS_TIMEOUT = 0.3
    dns_server.add("broken.example", "TXT", "x").fail("broken.example", "servfail")
    dns_server.fail("slow.example", "timeout")
    resolver = make_resolver()
    with pytest.raises(dns.resolver.NoNameservers):
        resolver.resolve("broken.example", "TXT")
    started = time.monotonic()
    with pytest.raises(dns.resolver.LifetimeTimeout):
        resolver.resolve("slow.example", "TXT")
    assert time.monotonic() - started < 1.5
    dns_server.heal("broken.example")
    assert resolver.resolve("broken.example", "TXT")


def test_tcp_and_truncation_fallback(dns_server):
    for i in range(12):
        dns_server.add("big.example", "TXT", f"record-{i}-" + "x" * 60)
    query = dns.message.make_query("big.example", "TXT")  # no EDNS: 512-byte UDP limit
    udp = dns.query.udp(query, "127.0.0.1", port=dns_server.port, timeout=2)
    assert udp.flags & dns.flags.TC and not udp.answer
    tcp = dns.query.tcp(query, "127.0.0.1", port=dns_server.port, timeout=2)
    assert tcp.rcode() == dns.rcode.NOERROR and len(tcp.answer[0]) == 12
    resolver = make_resolver()
    resolver.use_edns(-1)  # the resolver retries over TCP by itself
    assert len(resolver.resolve("big.example", "TXT")) == 12
    assert ("big.example", "TXT", "tcp") in dns_server.queries
