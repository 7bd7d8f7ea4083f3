"""A small authoritative DNS server for tests (dnspython, one background thread, UDP + TCP
on 127.0.0.1, free port).

    server = DNSTestServer().start()
    server.add("example.com", "TXT", ["v=spf1 ", "include:mail.test ~all"])   # one multi-string TXT
    server.add("example.com", "MX", "10 mx.example.com.")
    server.fail("broken.example", "servfail")     # or "timeout": never answers
    resolver.nameservers = [dns.nameserver.Do53Nameserver("127.0.0.1", server.port)]

Names are case-insensitive and absolute ("example.com" == "Example.COM."). A name with no
records of the asked type answers NOERROR/empty (NODATA); an unknown name answers NXDOMAIN.
CNAMEs are followed inside the server's own data. A UDP answer that does not fit is sent
truncated (TC), so resolvers retry over TCP, as with a real server.
"""
import selectors
import socket
import struct
import logging
import threading

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset

logger = logging.getLogger(__name__)

FAILURE_MODES = ("servfail", "timeout", "refused")


def _name(name):
    return dns.name.from_text(name) if isinstance(name, str) else name


def _rdata(rdtype, value):
    if rdtype == dns.rdatatype.TXT:
        strings = [value] if isinstance(value, (str, bytes)) else list(value)
        chunks = []
        for item in strings:
            item = item.encode() if isinstance(item, str) else item
            # A character-string holds at most 255 bytes: a long str becomes several strings,
            # which is how DKIM keys are published.
            chunks.extend([item[i:i + 255] for i in range(0, len(item), 255)] or [b""])
        return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, rdtype, chunks)
    return dns.rdata.from_text(dns.rdataclass.IN, rdtype, value, origin=dns.name.root, relativize=False)


class DNSTestServer:
    def __init__(self, host="127.0.0.1"):
        self.host = host
        self.port = None
        self.queries = []  # (name text, rdtype text, "udp"|"tcp"), for tests that count lookups
        self._records = {}  # dns.name.Name -> {rdtype: [(ttl, rdata)]}
        self._failures = {}  # dns.name.Name -> mode
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = None

    # --- data -----------------------------------------------------------------------------
    def add(self, name, rdtype, value, ttl=60):
        rdtype = dns.rdatatype.from_text(rdtype) if isinstance(rdtype, str) else rdtype
        rdata = _rdata(rdtype, value)
        with self._lock:
            self._records.setdefault(_name(name), {}).setdefault(rdtype, []).append((ttl, rdata))
        return self

    def remove(self, name, rdtype=None):
        name = _name(name)
        with self._lock:
            if rdtype is None:
                self._records.pop(name, None)
            else:
                rdtype = dns.rdatatype.from_text(rdtype) if isinstance(rdtype, str) else rdtype
                self._records.get(name, {}).pop(rdtype, None)
                if not self._records.get(name, True):
                    self._records.pop(name, None)
        return self

    def fail(self, name, mode="servfail"):
        """Make `name` (every type) answer SERVFAIL/REFUSED, or not answer at all ("timeout")."""
        if mode not in FAILURE_MODES:
            raise ValueError(f"mode must be one of {FAILURE_MODES}")
        with self._lock:
            self._failures[_name(name)] = mode
        return self

    def heal(self, name):
        with self._lock:
            self._failures.pop(_name(name), None)
        return self

    def clear(self):
        with self._lock:
            self._records.clear()
            self._failures.clear()
            self.queries.clear()
        return self

    # --- answering ----------------------------------------------------------------------------
    def _name_exists(self, name):
        # An empty non-terminal (e.g. _domainkey.example.com when only sel._domainkey exists)
        # exists: NODATA, not NXDOMAIN (RFC 8020).
        return name in self._records or any(other.is_subdomain(name) for other in self._records)

    def _answer(self, query):
        """The response message, or None to stay silent."""
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        qname, qtype = question.name, question.rdtype
        with self._lock:
            mode = self._failures.get(qname)
            if mode == "timeout":
                return None
            if mode:
                response.set_rcode(dns.rcode.SERVFAIL if mode == "servfail" else dns.rcode.REFUSED)
                return response
            name, seen = qname, set()
            while name not in seen:
                seen.add(name)
                by_type = self._records.get(name, {})
                wanted = by_type.get(qtype) if qtype != dns.rdatatype.ANY else [r for rs in by_type.values() for r in rs]
                if wanted:
                    for ttl, rdata in wanted:
                        response.find_rrset(response.answer, name, dns.rdataclass.IN, rdata.rdtype, create=True).add(rdata, ttl)
                    break
                cname = by_type.get(dns.rdatatype.CNAME)
                if cname and qtype != dns.rdatatype.CNAME:
                    ttl, rdata = cname[0]
                    response.find_rrset(response.answer, name, dns.rdataclass.IN, dns.rdatatype.CNAME, create=True).add(rdata, ttl)
                    name = rdata.target
                    if name in self._failures:
                        break
                    continue
                if not self._name_exists(name):
                    response.set_rcode(dns.rcode.NXDOMAIN)
                break
        return response

    def _handle(self, wire, transport):
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # garbage on the port: ignore, like a real server would log and drop
            return None
        if query.question:
            q = query.question[0]
            self.queries.append((q.name.to_text(omit_final_dot=True).lower(), dns.rdatatype.to_text(q.rdtype), transport))
        return self._answer(query)

    # --- sockets ------------------------------------------------------------------------------
    def _bind(self):
        for _ in range(20):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((self.host, 0))
            port = udp.getsockname()[1]
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind((self.host, port))
            except OSError:
                udp.close()
                tcp.close()
                continue
            tcp.listen(16)
            return udp, tcp, port
        raise RuntimeError("no free port for UDP and TCP together")

    def start(self):
        self._udp, self._tcp, self.port = self._bind()
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name=f"dns-test-server:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stopping.set()
        self._wake_w.send(b"x")
        self._thread.join(timeout=5)
        for sock in (self._udp, self._tcp, self._wake_r, self._wake_w):
            sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _serve(self):
        selector = selectors.DefaultSelector()
        selector.register(self._udp, selectors.EVENT_READ, "udp")
        selector.register(self._tcp, selectors.EVENT_READ, "tcp")
        selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        while not self._stopping.is_set():
            for key, _ in selector.select():
                try:
                    if key.data == "udp":
                        self._serve_udp()
                    elif key.data == "tcp":
                        conn, _ = self._tcp.accept()
                        threading.Thread(target=self._serve_tcp, args=(conn,), daemon=True).start()
                except Exception:  # a bug answering one query must not kill the server for the session
                    logger.exception("DNS test server failed to answer")
        selector.close()

    def _serve_udp(self):
        try:
            wire, peer = self._udp.recvfrom(65535)
        except OSError:
            return
        response = self._handle(wire, "udp")
        if response is None:
            return
        limit = max(512, response.payload if response.edns >= 0 else 512)
        try:
            out = response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            response.answer.clear()
            response.flags |= dns.flags.TC
            out = response.to_wire()
        self._udp.sendto(out, peer)

    def _serve_tcp(self, conn):
        conn.settimeout(5)
        with conn:
            try:
                while not self._stopping.is_set():
                    header = self._recv_exact(conn, 2)
                    if header is None:
                        return
                    wire = self._recv_exact(conn, struct.unpack("!H", header)[0])
                    if wire is None:
                        return
                    response = self._handle(wire, "tcp")
                    if response is None:
                        continue  # "timeout": keep the connection, never answer
                    out = response.to_wire()
                    conn.sendall(struct.pack("!H", len(out)) + out)
            except OSError:
                return

    @staticmethod
    def _recv_exact(conn, size):
        data = b""
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data
