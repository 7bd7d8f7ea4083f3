import pytest

from dispatch_site.netsafety import is_public_address, parse_ip_literal


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
    "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::7f00:1", "64:ff9b::a00:1", "2002:7f00:1::", "2002:a00:1::1",
    "::127.0.0.1", "198.18.0.1", "192.0.2.1", "not an ip",
])
def test_non_public_addresses_are_refused(address):
    assert is_public_address(address) is False


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"])
def test_public_addresses_are_allowed(address):
    assert is_public_address(address) is True


@pytest.mark.parametrize("literal,expected", [
    ("2130706433", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("127.1", "127.0.0.1"),
    ("[::1]", "::1"), ("10.0.0.1", "10.0.0.1"),
])
def test_numeric_host_forms_are_recognised(literal, expected):
    assert str(parse_ip_literal(literal)) == expected
    assert is_public_address(parse_ip_literal(literal)) is False


def test_names_are_not_ip_literals():
    assert parse_ip_literal("example.com") is None
