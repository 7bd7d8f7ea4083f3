#!/usr/bin/env python
"""`make bench`: Dispatch against Postfix on this machine, in one run, side by side.

Sets up production-like processes (gunicorn, smtp_gateway, Celery worker + beat, PostgreSQL,
Redis), a private Postfix instance, Postfix's smtp-sink as the remote MX and a loopback DNS
server that points the recipients' MX at the sink; then measures (each scenario several
times: median, min-max) and prints a table, writes bench/results/latest.json and refreshes
the table in bench/README.md.

    .venv/bin/python bench/run.py [--runs 3] [--smtp-messages 3000] [--long 100000]
"""
import argparse
import asyncio
import base64
import datetime
import json
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from loadgen import smtp_load  # noqa: E402
from postfix import PostfixInstance  # noqa: E402
from sink import Sink  # noqa: E402

from tests.support.dns_server import DNSTestServer  # noqa: E402

VENV_BIN = ROOT / ".venv" / "bin"
WORK = Path(tempfile.gettempdir()) / "dispatch-bench"
PORTS = {"http": 18000, "smtp": 12525, "sink": 12026, "postfix": 12587}
SENDER_DOMAIN = "sender.bench.test"
RCPT_DOMAIN = "rcpt.bench.test"
HOSTNAME = "dispatch.bench.test"


def log(*parts):
    print(time.strftime("%H:%M:%S"), *parts, flush=True)


# --- processes ---------------------------------------------------------------------------------
class Proc:
    def __init__(self, name, argv, env, logfile):
        self.name, self.argv, self.env, self.logfile = name, argv, env, logfile
        self.popen = None

    def start(self):
        out = open(self.logfile, "ab")
        self.popen = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        return self

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if not self.popen or self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, sig)
            self.popen.wait(timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def rss_kb(self):
        """Resident set size of the process and all its descendants, in KiB."""
        if not self.popen or self.popen.poll() is not None:
            return 0
        total = 0
        for pid in _tree_pids(self.popen.pid):
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                continue
        return total


def _tree_pids(root):
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _cpu_seconds(pids):
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError, ValueError):
            continue
    return total / ticks


def cpu_snapshot(procs):
    """CPU seconds used so far by each of our process trees and by the PostgreSQL backends of the
    bench database (a busy machine slows everything down; CPU per message does not change much)."""
    out = {p.name: _cpu_seconds(_tree_pids(p.popen.pid)) for p in procs if p.popen and p.popen.poll() is None}
    backends = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"dispatch_bench" in cmdline.read_bytes() and b"postgres" in cmdline.read_bytes():
                backends.append(int(cmdline.parent.name))
        except OSError:
            continue
    out["postgres"] = {pid: _cpu_seconds([pid]) for pid in backends}  # per backend: some exit meanwhile
    return out


def cpu_per_message(before, after, messages):
    if not messages:
        return {}
    out = {}
    for name, value in after.items():
        if isinstance(value, dict):  # backends that exited in between are not counted (slight undercount)
            used = sum(cpu - before.get(name, {}).get(pid, 0) for pid, cpu in value.items())
        else:
            used = value - before.get(name, 0)
        out[name] = round(1000 * used / messages, 2)
    return out


class RssSampler(threading.Thread):
    def __init__(self, procs, interval=1.0):
        super().__init__(daemon=True)
        self.procs, self.interval = procs, interval
        self.samples = {p.name: [] for p in procs}
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.wait(self.interval):
            for proc in self.procs:
                self.samples[proc.name].append((time.time(), proc.rss_kb()))


def wait_port(port, timeout=60):
    import socket

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


# --- set-up ----------------------------------------------------------------------------------------
def bench_env(dns_port):
    env = dict(os.environ)
    env.update(
        DISPATCH_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(48),
        DISPATCH_ENCRYPTION_KEYS=base64.urlsafe_b64encode(os.urandom(32)).decode(),
        DATABASE_URL="postgres://postgres:postgres@127.0.0.1:5432/dispatch_bench",
        REDIS_URL="redis://127.0.0.1:6379/13",
        ALLOWED_HOSTS="*",
        DISPATCH_HOSTNAME=HOSTNAME,
        DISPATCH_PUBLIC_URL=f"http://127.0.0.1:{PORTS['http']}",
        DISPATCH_VAR_DIR=str(WORK / "var"),
        DISPATCH_DELIVERY_MODE="mx",
        DISPATCH_OUTBOUND_ALLOW_PRIVATE="true",
        DISPATCH_OUTBOUND_SMTP_PORT=str(PORTS["sink"]),
        DISPATCH_DNS_NAMESERVERS=f"127.0.0.1:{dns_port}",
        DISPATCH_SMTP_BIND="127.0.0.1",
        DISPATCH_SMTP_STARTTLS_PORTS=str(PORTS["smtp"]),
        DISPATCH_SMTP_TLS_PORTS="",
        DISPATCH_SMTP_TLS_CERT=str(WORK / "tls" / "cert.pem"),
        DISPATCH_SMTP_TLS_KEY=str(WORK / "tls" / "key.pem"),
        LOG_LEVEL="WARNING",
    )
    return env


def make_tls_pair():
    (WORK / "tls").mkdir(parents=True, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "7", "-subj", "/CN=localhost",
                    "-keyout", str(WORK / "tls" / "key.pem"), "-out", str(WORK / "tls" / "cert.pem")],
                   check=True, capture_output=True)


def manage(env, *args, stdin=None):
    done = subprocess.run([str(VENV_BIN / "python"), "manage.py", *args], cwd=ROOT, env=env, input=stdin,
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stderr[-3000:]}")
    return done.stdout


SEED = """
import json
from django.db import transaction
from tenants.models import Plan
from tenants import services as ts
from domains import services as ds
plan, _ = Plan.objects.update_or_create(slug="bench", defaults=dict(
    name="Bench", monthly_quota=2_000_000_000, rate_limit_per_minute=100_000_000, log_retention_days=1,
    overage_allowed=True, is_public=False))
ts.plans_seed()
user = ts.user_register(email="bench@bench.test", password="bench-password-long-enough")
tenant = ts.tenant_create(owner=user, name="Bench", plan="starter")
tenant.plan = plan
tenant.save()
domain = ds.domain_create(tenant=tenant, name="%(domain)s")
cred, password = ts.credential_create(tenant=tenant, label="bench")
from domains.records import expected_records
records = [{"host": r.host, "record_type": r.record_type, "value": r.value} for r in expected_records(domain)]
print("BENCH " + json.dumps({"tenant": str(tenant.id), "domain": str(domain.id), "username": ts.credential_username(cred),
    "password": password, "records": records}))
"""

VERIFY = """
from tenants.models import Tenant
from domains import services as ds
tenant = Tenant.objects.get(pk="%(tenant)s")
domain, checks = ds.domain_verify(tenant=tenant, domain_id="%(domain)s")
print("VERIFIED", domain.status == "verified")
"""


def seed(env, dns):
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", "DROP DATABASE IF EXISTS dispatch_bench"],
                   check=True, env={**env, "PGPASSWORD": "postgres"})
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", "CREATE DATABASE dispatch_bench"],
                   check=True, env={**env, "PGPASSWORD": "postgres"})
    subprocess.run(["redis-cli", "-n", "13", "flushdb"], check=True, capture_output=True)
    manage(env, "migrate", "--noinput", "-v", "0")
    out = manage(env, "shell", "-c", SEED % {"domain": SENDER_DOMAIN})
    data = json.loads(out.split("BENCH ", 1)[1])
    for record in data["records"]:
        dns.add(record["host"], record["record_type"], record["value"])
    verified = manage(env, "shell", "-c", VERIFY % data)
    if "VERIFIED True" not in verified:
        raise RuntimeError(f"bench domain did not verify: {verified}")
    return data


# --- scenarios -----------------------------------------------------------------------------------------
def summarize(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic %(auth)s"
local template = [[%(body)s]]
local counter = 0
request = function()
  counter = counter + 1
  local body = string.gsub(template, "__N__", tostring(counter) .. "-" .. tostring(math.random(1, 1000000000)))
  return wrk.format(nil, nil, nil, body)
end
"""


def _wrk(url, auth, body, *, seconds, connections=32, threads=2):
    script = WORK / "wrk.lua"
    script.write_text(WRK_SCRIPT % {"auth": auth, "body": body})
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s",
                          "-s", str(script), url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p):
        match = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        if not match:
            return None
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rate": rate, "p50_ms": pct(50), "p99_ms": pct(99), "non_2xx": int(non2xx.group(1)) if non2xx else 0, "raw": out}


def http_scenarios(seed_data, runs, seconds, procs=()):
    auth = base64.b64encode(f"{seed_data['username']}:{seed_data['password']}".encode()).decode()
    base = f"http://127.0.0.1:{PORTS['http']}/api/v1/dispatch/tenants/{seed_data['tenant']}"
    one = {"from": f"Bench <app@{SENDER_DOMAIN}>", "to": [f"user-__N__@{RCPT_DOMAIN}"], "subject": "Receipt __N__",
           "html_body": "<p>Thanks for your order __N__.</p>" + "<p>Lorem ipsum dolor sit amet.</p>" * 20,
           "text_body": "Thanks for your order __N__."}
    bulk = {"messages": [dict(one, to=[f"user-__N__-{i}@{RCPT_DOMAIN}"]) for i in range(100)]}
    send, send_bulk = [], []
    for _ in range(runs):
        before = cpu_snapshot(procs)
        send.append(_wrk(f"{base}/send", auth, json.dumps(one), seconds=seconds))
        send[-1]["cpu_ms_per_request"] = cpu_per_message(before, cpu_snapshot(procs), int(send[-1]["rate"] * seconds))
        log(f"  /send CPU ms per request: {send[-1]['cpu_ms_per_request']}")
        log(f"  /send {send[-1]['rate']:.0f} req/s p50 {send[-1]['p50_ms']} ms p99 {send[-1]['p99_ms']} ms non-2xx {send[-1]['non_2xx']}")
    for _ in range(runs):
        before = cpu_snapshot(procs)
        result = _wrk(f"{base}/send-bulk", auth, json.dumps(bulk), seconds=seconds, connections=8)
        result["messages_rate"] = result["rate"] * 100
        result["cpu_ms_per_message"] = cpu_per_message(before, cpu_snapshot(procs), int(result["messages_rate"] * seconds))
        log(f"  /send-bulk CPU ms per message: {result['cpu_ms_per_message']}")
        send_bulk.append(result)
        log(f"  /send-bulk {result['messages_rate']:.0f} messages/s (p99 {result['p99_ms']} ms) non-2xx {result['non_2xx']}")
    return {
        "send_rps": summarize([r["rate"] for r in send if not r["non_2xx"]]),
        "send_p50_ms": summarize([r["p50_ms"] for r in send]),
        "send_p99_ms": summarize([r["p99_ms"] for r in send]),
        "send_non_2xx": sum(r["non_2xx"] for r in send),
        "bulk_messages_per_s": summarize([r["messages_rate"] for r in send_bulk if not r["non_2xx"]]),
        "bulk_non_2xx": sum(r["non_2xx"] for r in send_bulk),
    }


def machine_cpu():
    """Whole-machine CPU seconds so far from /proc/stat: (busy, idle + iowait, steal). Busy counts
    every process (ours or Postfix's, the load generator, the sink, PostgreSQL, the kernel)."""
    ticks = os.sysconf("SC_CLK_TCK")
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
    return (user + nice + system + irq + softirq) / ticks, (idle + iowait) / ticks, steal / ticks


def machine_cpu_use(before, after, messages):
    """CPU ms per message for the whole machine, and the share of the CPUs left idle or stolen by
    the host (a VM's neighbours) during the run."""
    busy, idle, steal = (a - b for a, b in zip(after, before))
    total = busy + idle + steal
    return {"busy_ms_per_message": round(1000 * busy / messages, 2) if messages else None,
            "idle_pct": round(100 * idle / total, 1) if total else None,
            "steal_pct": round(100 * steal / total, 1) if total else None}


def relay_run(sink, *, port, username, password, total, sessions, sender, timeout):
    """Submit over SMTP and wait for every accepted message at the sink; checks exactly-once."""
    cpu_before, loadgen_before = machine_cpu(), time.process_time()
    result = asyncio.run(smtp_load(host="127.0.0.1", port=port, total=total, sessions=sessions, username=username,
                                   password=password, sender=sender,
                                   recipient_for=lambda i: f"user{i}@{RCPT_DOMAIN}"))
    loadgen_cpu = time.process_time() - loadgen_before  # the submissions only, not the polling of the sink below
    counts, waited = sink.wait_for(result["accepted"], result["run_id"], timeout)
    machine = machine_cpu_use(cpu_before, machine_cpu(), len(counts))
    # The load generator runs in this process (asyncio, TLS): its CPU is part of both systems' runs.
    machine["loadgen_ms_per_message"] = round(1000 * loadgen_cpu / max(len(counts), 1), 2)
    accepted = set(result["accepted"])
    missing = len(accepted - set(counts))
    duplicates = sum(1 for c in counts.values() if c > 1)
    unexpected = len(set(counts) - accepted)
    ok = not missing and not duplicates and not unexpected and not result["errors"]
    return {"accepted": len(accepted), "errors": len(result["errors"]), "first_errors": result["errors"][:3],
            "accept_rate": result["rate"], "accept_seconds": result["seconds"],
            "e2e_rate": len(set(counts) & accepted) / (result["seconds"] + waited),
            "missing": missing, "duplicates": duplicates, "unexpected": unexpected, "exactly_once": ok,
            "machine": machine}


def bounce_parser_throughput():
    code = (
        "import time, pathlib\n"
        "from sending.bounces.parse import parse_report\n"
        "files=[p.read_bytes() for p in sorted(pathlib.Path('../shared/corpus/bounces/eml').glob('*.eml'))]\n"
        "t=time.perf_counter(); n=0\n"
        "while time.perf_counter()-t < 5:\n"
        "    for raw in files: parse_report(raw); n+=1\n"
        "print('RATE', n/(time.perf_counter()-t), len(files))\n"
    )
    env = dict(os.environ, DISPATCH_ENV="development")
    try:
        out = manage(env, "shell", "-c", code)
    except subprocess.CalledProcessError as exc:
        return {"error": exc.stderr[-500:]}
    rate, files = out.split("RATE ", 1)[1].split()
    return {"messages_per_s": float(rate), "corpus_files": int(files)}


# --- report ------------------------------------------------------------------------------------------------
def fmt(summary, unit="", digits=0):
    if not summary:
        return "n/a"
    return f"{summary['median']:.{digits}f}{unit} ({summary['min']:.{digits}f}–{summary['max']:.{digits}f})"


def table(results):
    r = results
    rows = [("Scenario", "Dispatch", "Postfix", "Ratio", "Target")]
    http = r.get("http") or {}
    rows.append(("HTTP /send req/s (32 clients)", fmt(http.get("send_rps")), "—", "—", "≥ 400"))
    rows.append(("HTTP /send p50 / p99 ms", f"{fmt(http.get('send_p50_ms'), digits=1)} / {fmt(http.get('send_p99_ms'), digits=1)}", "—", "—", "p99 ≤ 100"))
    rows.append(("HTTP /send-bulk messages/s", fmt(http.get("bulk_messages_per_s")), "—", "—", "≥ 2,000"))
    d, p = r.get("dispatch_relay") or {}, r.get("postfix_relay") or {}
    ratio = lambda a, b: f"{a['median'] / b['median']:.2f}×" if a and b and b["median"] else "n/a"  # noqa: E731
    rows.append(("SMTP accept msg/s (20 STARTTLS+AUTH sessions, 2 KB)", fmt(d.get("accept_rate")), fmt(p.get("accept_rate")),
                 ratio(d.get("accept_rate"), p.get("accept_rate")), "≥ 1.5×"))
    rows.append(("End-to-end relay to smtp-sink msg/s", fmt(d.get("e2e_rate")), fmt(p.get("e2e_rate")),
                 ratio(d.get("e2e_rate"), p.get("e2e_rate")), "≥ 2×"))
    rows.append(("Relay: whole-machine CPU ms/msg (ratio: Postfix ÷ Dispatch)", fmt(d.get("machine_busy_ms_per_message"), digits=2),
                 fmt(p.get("machine_busy_ms_per_message"), digits=2), ratio(p.get("machine_busy_ms_per_message"), d.get("machine_busy_ms_per_message")), ""))
    rows.append(("Relay: of which the load generator, CPU ms/msg", fmt(d.get("loadgen_ms_per_message"), digits=2),
                 fmt(p.get("loadgen_ms_per_message"), digits=2), "", ""))
    rows.append(("Relay: CPU idle / stolen by the host %", f"{fmt(d.get('machine_idle_pct'), digits=1)} / {fmt(d.get('machine_steal_pct'), digits=1)}",
                 f"{fmt(p.get('machine_idle_pct'), digits=1)} / {fmt(p.get('machine_steal_pct'), digits=1)}", "", ""))
    rows.append(("Exactly once at the sink (all runs)", str(d.get("exactly_once")), str(p.get("exactly_once")), "", "True"))
    rows.append(("Ceiling: load generator → smtp-sink msg/s", fmt(r.get("ceiling")), "", "", ""))
    rss = r.get("rss") or {}
    for name in ("worker", "smtp"):
        if name in rss:
            rows.append((f"{name} RSS peak / growth MiB", f"{rss[name]['peak_mib']:.0f} / {rss[name]['growth_mib']:+.0f}", "", "", "flat"))
    if r.get("long_run"):
        rows.append((f"Long run: {r['long_run']['messages']} messages, exactly once", str(r["long_run"]["exactly_once"]), "", "", "True"))
        rows.append(("Long run: accepted / delivered msg/s", f"{r['long_run']['accept_rate']:.0f} / {r['long_run']['e2e_rate']:.0f}",
                     "", "", ""))
    bp = r.get("bounce_parser") or {}
    if "messages_per_s" in bp:
        rows.append(("Bounce parser msg/s (corpus)", f"{bp['messages_per_s']:.0f}", "", "", ""))
    # Scenarios this run skipped say nothing: leave them out.
    rows = [row for row in rows if not all(str(cell) in ("n/a", "None", "n/a / n/a", "", "—") for cell in row[1:3])]
    widths = [max(len(str(row[i])) for row in rows) for i in range(5)]
    lines = ["| " + " | ".join(str(c).ljust(widths[i]) for i, c in enumerate(row)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def summarize_relays(runs):
    if not runs:
        return {}
    return {
        "accept_rate": summarize([x["accept_rate"] for x in runs]),
        "e2e_rate": summarize([x["e2e_rate"] for x in runs]),
        "exactly_once": all(x["exactly_once"] for x in runs),
        "machine_busy_ms_per_message": summarize([x["machine"]["busy_ms_per_message"] for x in runs]),
        "loadgen_ms_per_message": summarize([x["machine"]["loadgen_ms_per_message"] for x in runs]),
        "machine_idle_pct": summarize([x["machine"]["idle_pct"] for x in runs]),
        "machine_steal_pct": summarize([x["machine"]["steal_pct"] for x in runs]),
        "runs": runs,
    }


def rss_summary(sampler):
    out = {}
    for name, samples in sampler.samples.items():
        values = [kb for _, kb in samples if kb]
        if not values:
            continue
        warm = values[len(values) // 10:] or values  # skip start-up
        quarter = max(len(warm) // 4, 1)
        out[name] = {"peak_mib": max(values) / 1024,
                     "growth_mib": (statistics.median(warm[-quarter:]) - statistics.median(warm[:quarter])) / 1024,
                     "samples": len(values)}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--smtp-messages", type=int, default=3000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--http-seconds", type=int, default=10)
    parser.add_argument("--long", type=int, default=0, help="messages in the long RSS run (e.g. 100000); 0 = skip")
    parser.add_argument("--web-workers", type=int, default=4)
    parser.add_argument("--web-threads", type=int, default=4)
    parser.add_argument("--worker-concurrency", type=int, default=4)
    parser.add_argument("--gateway-args", default="")
    parser.add_argument("--skip", default="", help="comma list: http,postfix,dispatch,ceiling,parser")
    parser.add_argument("--record-as", default="latest", choices=("latest", "long"),
                        help="which results file and README block this run replaces (a --long run alone: long)")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    if WORK.exists():
        shutil.rmtree(WORK)
    (WORK / "logs").mkdir(parents=True)
    make_tls_pair()
    dns = DNSTestServer()
    dns.start()
    dns.add(RCPT_DOMAIN, "MX", f"10 mx.{RCPT_DOMAIN}.")
    dns.add(f"mx.{RCPT_DOMAIN}", "A", "127.0.0.1")
    env = bench_env(dns.port)
    log("seeding the bench database, tenant, verified domain and credential")
    seed_data = seed(env, dns)
    results = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                           "postfix": subprocess.run(["postconf", "-h", "mail_version"], capture_output=True, text=True).stdout.strip()},
               "parameters": vars(args)}

    sink = Sink(PORTS["sink"], WORK / "sink")
    sink.start()
    procs = {
        "web": Proc("web", [str(VENV_BIN / "gunicorn"), "dispatch_site.wsgi", "--bind", f"127.0.0.1:{PORTS['http']}",
                            "--workers", str(args.web_workers), "--worker-class", "gthread", "--threads", str(args.web_threads),
                            "--access-logfile", "-", "--log-level", "warning"], env, WORK / "logs" / "web.log"),
        "smtp": Proc("smtp", [str(VENV_BIN / "python"), "manage.py", "smtp_gateway", *args.gateway_args.split()],
                     env, WORK / "logs" / "smtp.log"),
        "worker": Proc("worker", [str(VENV_BIN / "celery"), "-A", "dispatch_site", "worker", "-Q", "delivery,events,default",
                                  "--concurrency", str(args.worker_concurrency), "--loglevel", "WARNING"], env, WORK / "logs" / "worker.log"),
        "beat": Proc("beat", [str(VENV_BIN / "celery"), "-A", "dispatch_site", "beat", "--loglevel", "WARNING",
                              "--schedule", str(WORK / "beat-schedule")], env, WORK / "logs" / "beat.log"),
    }
    # Access logs cost gunicorn time that a real deployment would also pay; keep them off here.
    procs["web"].argv = [a for a in procs["web"].argv if a not in ("--access-logfile", "-")]
    sampler = RssSampler([procs["worker"], procs["smtp"]])
    try:
        for proc in procs.values():
            proc.start()
        wait_port(PORTS["http"])
        wait_port(PORTS["smtp"])
        sampler.start()
        time.sleep(3)

        if "ceiling" not in skip:
            log("ceiling: load generator straight into smtp-sink")
            ceiling = []
            for _ in range(args.runs):
                r = asyncio.run(smtp_load(host="127.0.0.1", port=PORTS["sink"], total=args.smtp_messages, sessions=args.sessions,
                                          tls="none", sender=f"app@{SENDER_DOMAIN}", recipient_for=lambda i: f"u{i}@{RCPT_DOMAIN}"))
                ceiling.append(r["rate"])
                log(f"  ceiling {r['rate']:.0f} msg/s")
            results["ceiling"] = summarize(ceiling)

        if "dispatch" not in skip:
            log("Dispatch: SMTP submission (STARTTLS + AUTH) → delivery → smtp-sink")
            runs = []
            for _ in range(args.runs):
                before = cpu_snapshot(procs.values())
                runs.append(relay_run(sink, port=PORTS["smtp"], username=seed_data["username"], password=seed_data["password"],
                                      total=args.smtp_messages, sessions=args.sessions, sender=f"app@{SENDER_DOMAIN}",
                                      timeout=600))
                runs[-1]["cpu_ms_per_message"] = cpu_per_message(before, cpu_snapshot(procs.values()), runs[-1]["accepted"])
                log("  dispatch", {k: (round(v, 1) if isinstance(v, float) else v) for k, v in runs[-1].items()})
            results["dispatch_relay"] = summarize_relays(runs)

        if "http" not in skip:
            log("HTTP API with wrk (32 connections)")
            results["http"] = http_scenarios(seed_data, args.runs, args.http_seconds, procs.values())

        if args.long:
            log(f"long run: {args.long} messages over SMTP (RSS must stay flat)")
            results["long_run"] = relay_run(sink, port=PORTS["smtp"], username=seed_data["username"], password=seed_data["password"],
                                            total=args.long, sessions=args.sessions, sender=f"app@{SENDER_DOMAIN}", timeout=3600)
            results["long_run"]["messages"] = args.long
            log("  long", {k: v for k, v in results["long_run"].items() if k != "first_errors"})
        results["rss"] = rss_summary(sampler)
    finally:
        sampler.stopped.set()
        for proc in procs.values():
            proc.stop()

    if "postfix" not in skip:
        log("Postfix: smtpd (STARTTLS + SASL) → queue → smtp → smtp-sink")
        postfix = PostfixInstance(WORK / "postfix", listen_port=PORTS["postfix"], sink_port=PORTS["sink"],
                                  cert=WORK / "tls" / "cert.pem", key=WORK / "tls" / "key.pem")
        postfix.setup()
        postfix.start()
        wait_port(PORTS["postfix"])
        try:
            runs = []
            for _ in range(args.runs):
                runs.append(relay_run(sink, port=PORTS["postfix"], username=postfix.user, password=postfix.password,
                                      total=args.smtp_messages, sessions=args.sessions, sender=f"app@{SENDER_DOMAIN}",
                                      timeout=600))
                log("  postfix", {k: (round(v, 1) if isinstance(v, float) else v) for k, v in runs[-1].items()})
            results["postfix_relay"] = summarize_relays(runs)
        finally:
            postfix.stop()
    sink.stop()
    dns.stop()

    if "parser" not in skip:
        results["bounce_parser"] = bounce_parser_throughput()

    report = table(results)
    print("\n" + report + "\n")
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    name = args.record_as
    (out_dir / f"{name}.json").write_text(json.dumps(results, indent=2, default=str))
    readme = ROOT / "bench" / "README.md"
    if readme.exists():
        text = readme.read_text()
        block = (f"<!-- {name} -->\nRun of {results['date']} on {results['machine']['cpus']} CPUs, "
                 f"{results['machine']['platform']}, Postfix {results['machine']['postfix']}.\n\n{report}\n<!-- /{name} -->")
        pattern = rf"<!-- {name} -->.*<!-- /{name} -->"
        text = re.sub(pattern, lambda _: block, text, flags=re.S) if re.search(pattern, text, flags=re.S) else text + "\n" + block + "\n"
        readme.write_text(text)
    log(f"results in {out_dir / f'{name}.json'}; logs in {WORK / 'logs'}")


if __name__ == "__main__":
    main()
