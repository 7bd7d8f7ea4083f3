"""POST a webhook to a tenant-controlled URL without letting the tenant aim us at our own network.

The host is resolved once, every address must be public (unless DISPATCH_WEBHOOK_ALLOW_PRIVATE),
and the TCP connection goes to an address from that checked list: there is no second lookup a
DNS-rebinding attacker could answer differently. The Host header and TLS (SNI and certificate
verification) still use the hostname from the URL. Redirects are never followed; one deadline
bounds the whole exchange."""
import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, urlsplit

import certifi
import dns.exception
import dns.resolver
from django.conf import settings

from dispatch_site.netsafety import is_public_address, parse_ip_literal
from domains.dns import make_resolver

USER_AGENT = "Dispatch-Webhooks/1.0"
_HOSTNAME = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*")
RESPONSE_BODY_LIMIT = 2048


class UnsafeURL(ValueError):
    """The URL is malformed or points somewhere we refuse to connect to."""


@dataclass
class Target:
    scheme: str
    host: str  # lower-case; IDNA-encoded for names; bare (no brackets) for IPv6
    port: int
    path: str  # path + query, never empty

    @property
    def host_header(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass
class Result:
    status: int | None = None
    body: str = ""
    error: str = ""
    remote_ip: str = ""
    duration_ms: int = 0

    @property
    def ok(self):
        return self.status is not None and 200 <= self.status < 300


def allow_private():
    return settings.DISPATCH_WEBHOOK_ALLOW_PRIVATE


def parse_target(url):
    """Split and check a webhook URL (shape only: no DNS). Raises UnsafeURL."""
    if any(ch in url for ch in "\r\n\t ") or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise UnsafeURL("the URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"the URL is malformed ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeURL("the URL must start with http:// or https://")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeURL("the URL must not contain credentials")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeURL("the URL has no host")
    literal = parse_ip_literal(host)
    if literal is None:
        try:
            host = host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise UnsafeURL("the host name is not a valid domain name") from None
        # IDNA maps some characters to ASCII digits and dots: look again for an address.
        literal = parse_ip_literal(host)
    if literal is not None:
        host = str(literal)
    elif not _HOSTNAME.fullmatch(host) or len(host) > 253:
        raise UnsafeURL("the host name is not a valid domain name")
    # The request line is ASCII: percent-encode anything else (existing escapes are kept).
    path = quote(parts.path or "/", safe="/%!$&'()*+,;=:@~")
    if parts.query:
        path += "?" + quote(parts.query, safe="/%!$&'()*+,;=:@~?")
    return Target(scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80), path=path)


def check_url(url):
    """Validation when a URL is registered: shape, and IP-literal hosts must be public.
    Names are checked at every delivery, when they are resolved."""
    target = parse_target(url)
    if allow_private():
        return target
    literal = parse_ip_literal(target.host)
    if literal is not None and not is_public_address(literal):
        raise UnsafeURL(f"the host {literal} is not a public address")
    if _is_localhost(target.host):
        raise UnsafeURL(f"the host {target.host} is not a public address")
    return target


def _is_localhost(host):
    return host == "localhost" or host.endswith(".localhost")  # RFC 6761: always loopback


def resolve_checked(host):
    """The addresses to connect to; raises UnsafeURL when any of them is not public (or none)."""
    literal = parse_ip_literal(host)
    if literal is not None:
        addresses = [literal]
    elif _is_localhost(host) and not allow_private():
        raise UnsafeURL(f"{host} is a loopback name")
    else:
        addresses = _resolve(host)
    if not allow_private():
        refused = [str(a) for a in addresses if not is_public_address(a)]
        if refused:
            raise UnsafeURL(f"{host} resolves to a non-public address ({', '.join(refused)})")
    return addresses


def _resolve(host):
    resolver = make_resolver()
    addresses = []
    errors = []
    for rdtype in ("A", "AAAA"):
        try:
            answer = resolver.resolve(host, rdtype)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        except dns.exception.DNSException as exc:  # timeouts, SERVFAIL, malformed names
            errors.append(type(exc).__name__)
            continue
        addresses.extend(ipaddress.ip_address(r.address) for r in answer)
    if not addresses:
        detail = f" ({', '.join(errors)})" if errors else ""
        raise UnsafeURL(f"{host} does not resolve to any address{detail}")
    return addresses


@lru_cache(maxsize=1)
def tls_context():
    context = ssl.create_default_context(cafile=certifi.where())
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def post(url, *, body, headers):
    """POST `body` (bytes) to `url`. Never raises for network trouble: the Result says what
    happened (status None + error when no HTTP answer arrived)."""
    started = time.monotonic()
    result = Result()
    try:
        target = parse_target(url)
        addresses = resolve_checked(target.host)
    except UnsafeURL as exc:
        result.error = f"refused: {exc}"
    else:
        deadline = started + settings.DISPATCH_WEBHOOK_TIMEOUT
        for address in addresses:
            result = _post_to(address, target, body, headers, deadline)
            # Another address of the same (checked) host may answer when this one is unreachable.
            if result.status is not None or not result.error.startswith("connect"):
                break
    result.duration_ms = int((time.monotonic() - started) * 1000)
    return result


def _post_to(address, target, body, headers, deadline):
    result = Result(remote_ip=str(address))
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        result.error = "timeout: no time left"
        return result
    try:
        sock = socket.create_connection(
            (str(address), target.port), timeout=min(settings.DISPATCH_WEBHOOK_CONNECT_TIMEOUT, remaining)
        )
    except TimeoutError:
        result.error = f"connect timeout to {address}"
        return result
    except OSError as exc:
        result.error = f"connect failed to {address}: {exc.strerror or exc}"
        return result
    # One deadline for TLS, request and response, however slowly the receiver dribbles bytes.
    expired = threading.Event()
    watchdog = threading.Timer(max(deadline - time.monotonic(), 0), _abort, args=(sock, expired))
    watchdog.daemon = True
    watchdog.start()
    try:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        if target.scheme == "https":
            sock = tls_context().wrap_socket(sock, server_hostname=target.host)
        connection = http.client.HTTPConnection(target.host, target.port)
        connection.sock = sock
        connection.putrequest("POST", target.path, skip_host=True, skip_accept_encoding=True)
        for name, value in {
            "Host": target.host_header,
            "User-Agent": USER_AGENT,
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            **headers,
        }.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        if expired.is_set():  # the shutdown looks like a clean end of the headers: it is not
            raise TimeoutError
        result.status = response.status
        try:
            raw = response.read(RESPONSE_BODY_LIMIT)
        except (OSError, http.client.HTTPException):
            raw = b""
        result.body = raw.decode("utf-8", "replace").replace("\x00", "")[:RESPONSE_BODY_LIMIT]
    except ssl.SSLError as exc:
        result.error = f"TLS error: {exc.reason or exc}"
    except (TimeoutError, socket.timeout):
        result.error = f"timeout after {settings.DISPATCH_WEBHOOK_TIMEOUT:g} s"
    except (OSError, http.client.HTTPException) as exc:
        timed_out = expired.is_set() or time.monotonic() >= deadline
        result.error = f"timeout after {settings.DISPATCH_WEBHOOK_TIMEOUT:g} s" if timed_out else f"{type(exc).__name__}: {exc}"
    finally:
        watchdog.cancel()
        sock.close()
    return result


def _abort(sock, expired):
    expired.set()
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
