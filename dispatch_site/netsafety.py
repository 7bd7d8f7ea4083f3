"""Is this address somewhere a tenant may make us connect to? (SSRF guard for MX hosts and
webhook URLs.)

`ipaddress`'s is_private / is_loopback miss IPv4 embedded in IPv6 (mapped ::ffff:127.0.0.1,
NAT64 64:ff9b::7f00:1, 6to4 2002:7f00:1::, Teredo) and CGNAT 100.64.0.0/10, so embedded IPv4 is
unwrapped first and every address must be globally routable."""
import ipaddress

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


def _embedded_ipv4(address):
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address.sixtofour:
        return address.sixtofour
    if address.teredo:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    # IPv4-compatible (deprecated) ::a.b.c.d
    if int(address) >> 32 == 0 and int(address) > 1:
        return ipaddress.IPv4Address(int(address))
    return None


def is_public_address(value):
    """True only for a globally routable unicast address. Accepts str or ip_address objects;
    anything unparsable is not public."""
    try:
        address = ipaddress.ip_address(value) if not isinstance(value, ipaddress._BaseAddress) else value
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return False
        if address in _NAT64_LOCAL:
            return False
        inner = _embedded_ipv4(address)
        if inner is not None:
            return is_public_address(inner)
    if address.is_multicast or address.is_unspecified or address.is_reserved:
        return False
    return address.is_global


def parse_ip_literal(host):
    """An IP address written in any form a resolver would accept (dotted, decimal '2130706433',
    octal '0177.0.0.1', hex, short '127.1'), or None if `host` is a name."""
    import socket

    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        # inet_aton accepts exactly the legacy numeric forms that getaddrinfo would resolve.
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None
