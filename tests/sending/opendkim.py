"""Verify a message with OpenDKIM's `opendkim-testmsg` (an independent verifier).

libopendkim looks the key up through the system resolver on port 53, so the check runs in
a private mount + network namespace (`unshare -mn`): its own loopback, a resolv.conf
pointing at 127.0.0.1, and a one-record DNS server answering the DKIM TXT query.
Nothing outside the namespace is touched."""
import functools
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_INSIDE = r'''
import json, socket, subprocess, sys, threading
import dns.message, dns.rdatatype, dns.rrset
spec = json.loads(sys.argv[1])
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
subprocess.run(["mount", "--bind", spec["resolv"], "/etc/resolv.conf"], check=True)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", 53))
def serve():
    while True:
        data, peer = sock.recvfrom(4096)
        query = dns.message.from_wire(data)
        reply = dns.message.make_response(query)
        q = query.question[0]
        if q.rdtype == dns.rdatatype.TXT and q.name.to_text().lower() == spec["name"].lower():
            chunks = " ".join('"%s"' % spec["txt"][i:i + 255] for i in range(0, len(spec["txt"]), 255))
            reply.answer.append(dns.rrset.from_text(q.name, 60, "IN", "TXT", chunks))
        else:
            reply.set_rcode(3)
        sock.sendto(reply.to_wire(), peer)
threading.Thread(target=serve, daemon=True).start()
with open(spec["message"], "rb") as fh:
    done = subprocess.run(["opendkim-testmsg"], stdin=fh, capture_output=True, timeout=20)
sys.stdout.write(json.dumps({"rc": done.returncode, "out": done.stdout.decode(errors="replace"), "err": done.stderr.decode(errors="replace")}))
'''


@functools.lru_cache(maxsize=1)
def available():
    """opendkim-testmsg is installed and this process may create namespaces (root, or a
    container with CAP_SYS_ADMIN); otherwise the OpenDKIM tests skip."""
    if not (shutil.which("opendkim-testmsg") and shutil.which("unshare") and shutil.which("ip")):
        return False
    probe = subprocess.run(["unshare", "-mn", "true"], capture_output=True)
    return probe.returncode == 0


def opendkim_verify(message: bytes, *, record_name: str, txt: str):
    """Returns (ok, diagnostics). `record_name` is e.g. "sel._domainkey.example.com."."""
    with tempfile.TemporaryDirectory() as tmp:
        resolv = Path(tmp) / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.1\noptions timeout:2 attempts:1\n")
        msg = Path(tmp) / "message.eml"
        msg.write_bytes(message)
        spec = json.dumps({"resolv": str(resolv), "message": str(msg), "name": record_name, "txt": txt})
        done = subprocess.run(
            ["unshare", "-mn", sys.executable, "-c", _INSIDE, spec], capture_output=True, timeout=60
        )
    if done.returncode != 0:
        return False, done.stderr.decode(errors="replace")
    result = json.loads(done.stdout)
    return result["rc"] == 0 and not result["err"].strip(), result
