"""The bounce/complaint parser under hostile input (issue 14, item 7). tests/bounces/test_fuzz.py
already mutates the real corpus and checks that parse_report never raises and answers within a
second; this adds what it does not check: bounded memory and real hangs, on inputs built to hit
quadratic paths and big allocations, plus a fuzz of classify_reply.

Each parse runs in a forked child that is killed after a timeout. Memory is the child's peak
resident set growth (ru_maxrss after minus before), not tracemalloc: tracemalloc slows the email
package's deep recursion twentyfold and would turn bounded inputs into timeouts."""
import base64
import multiprocessing
import pathlib
import resource
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from sending.bounces.classify import classify_reply
from sending.bounces.parse import parse_report

CORPUS = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "bounces" / "eml"
SEEDS = [p.read_bytes() for p in sorted(CORPUS.glob("*.eml"))[::11]] if CORPUS.is_dir() else []
SEEDS = SEEDS or [b"From: MAILER-DAEMON@x.example\nSubject: failure notice\n\n<a@b.example>:\n550 5.1.1 user unknown\n"]

SECONDS = 3.0  # one parse, measured without tracemalloc
PEAK_BYTES = 64 * 1024 * 1024  # growth of the peak RSS; the parser caps its input at 1 MB
KILL_AFTER = 10.0

DSN_HEAD = b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
HOSTILE = {
    "50 MB of one byte": b"a" * 50_000_000,
    "1 MB single line": b"From: MAILER-DAEMON@x\nSubject: x\n\n" + b"x" * 1_000_000,
    "100,000 header fields": b"".join(b"X-H%d: v\n" % i for i in range(100_000)) + b"\nbody",
    "60,000 encoded words in Subject": b"Subject: " + b"=?utf-8?b?YWJj?= " * 60_000 + b"\n\nbody",
    "60,000 encoded words in From": b"From: " + b"=?utf-8?q?a?= " * 60_000 + b"<MAILER-DAEMON@x>\n\nbody",
    "10,000 MIME parts": DSN_HEAD + b"--b\nContent-Type: text/plain\n\nuser unknown a@b.example\n" * 10_000 + b"--b--\n",
    "20,000 nested message/rfc822": b"Content-Type: message/rfc822\n\n" * 20_000 + b"x",
    "2,000 nested multiparts": b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i) for i in range(2_000)),
    "base64 delivery-status": DSN_HEAD + b"--b\nContent-Type: message/delivery-status\nContent-Transfer-Encoding: base64\n\n"
    + base64.encodebytes(b"Final-Recipient: rfc822; a@b.example\nAction: failed\nStatus: 5.1.1\n\n" * 10_000) + b"\n--b--\n",
    "quoted-printable expansion": b"Content-Transfer-Encoding: quoted-printable\n\n" + b"=41" * 300_000,
    "100,000 addresses": b"From: MAILER-DAEMON@x\nSubject: Undelivered\n\n" + b"<a@b.example> " * 100_000,
    "20,000 DSN recipient groups": DSN_HEAD + b"--b\nContent-Type: message/delivery-status\n\n"
    + b"Final-Recipient: rfc822; c@d.example\nAction: failed\nStatus: 5.1.1\n\n" * 20_000 + b"--b--\n",
    "200,000 parentheses": b"From: MAILER-DAEMON@x\nSubject: " + b"(" * 200_000 + b"\n\nx",
    "SES JSON with 30,000 recipients": b'Content-Type: application/json\n\n{"notificationType": "Bounce", "bounce": '
    b'{"bouncedRecipients": [' + b'{"emailAddress": "a@b.example"},' * 30_000 + b"{}]}}",
    "ARF with 10,000 feedback fields": b'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\n\n'
    b"--b\nContent-Type: message/feedback-report\n\n" + b"Feedback-Type: abuse\nOriginal-Rcpt-To: a@b.example\n" * 10_000 + b"--b--\n",
    "CR-only line ends": (b"From: MAILER-DAEMON@x\rSubject: Undelivered\r\r" + b"550 5.1.1 <a@b.example> user unknown\r" * 20_000),
}


def _max_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _measure(raw, conn):
    before = _max_rss()
    started = time.perf_counter()
    report = parse_report(raw)
    elapsed = time.perf_counter() - started
    conn.send((elapsed, _max_rss() - before, report.kind, len(report.recipients)))


def measure(raw):
    """(seconds, peak bytes, kind, recipients) of parse_report(raw) in a child process that is
    killed after KILL_AFTER seconds (then seconds is inf)."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_measure, args=(raw, sender), daemon=True)
    child.start()
    if not receiver.poll(KILL_AFTER):
        child.kill()
        child.join()
        return float("inf"), 0, "killed", 0
    result = receiver.recv()
    child.join()
    assert child.exitcode == 0, f"the parser crashed the process (exit code {child.exitcode})"
    return result


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_report_is_parsed_quickly_in_bounded_memory(name):
    seconds, peak, kind, recipients = measure(HOSTILE[name])
    assert kind in ("dsn", "arf", "autoreply", "not_bounce"), kind
    assert seconds < SECONDS, f"{name}: {seconds:.1f} s"
    assert peak < PEAK_BYTES, f"{name}: {peak / 1e6:.0f} MB"
    assert recipients <= 100


@st.composite
def spliced_reports(draw):
    """Two corpus messages cut and joined, with header-level damage: repeated header lines,
    encoded words, long folded lines and stray boundaries."""
    first, second = draw(st.sampled_from(SEEDS)), draw(st.sampled_from(SEEDS))
    raw = bytearray(first[: draw(st.integers(0, len(first)))] + second[draw(st.integers(0, len(second))):])
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(raw)))
        chunk = draw(st.sampled_from([
            b"Subject: =?utf-8?b?YWJj?= \n", b"\n --b\n", b"Content-Type: message/rfc822\n\n", b"X-Long: " + b"a " * 4000 + b"\n",
            b"Final-Recipient: rfc822; x@y.example\nAction: failed\nStatus: 5.1.1\n\n", b"\t folded continuation\n",
            b"Content-Transfer-Encoding: base64\n\n", b"=?", b"?=", b"\r", b"\x00",
        ]))
        raw[position:position] = chunk * draw(st.integers(1, 300))
    return bytes(raw)


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(spliced_reports())
def test_spliced_corpus_reports_never_crash_hang_or_balloon(raw):
    seconds, peak, kind, _ = measure(raw)
    assert kind in ("dsn", "arf", "autoreply", "not_bounce")
    assert seconds < SECONDS and peak < PEAK_BYTES, (seconds, peak)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    code=st.one_of(st.none(), st.integers(-10**6, 10**6)),
    enhanced=st.one_of(st.none(), st.text(max_size=40), st.from_regex(r"[245]\.\d{1,3}\.\d{1,3}", fullmatch=True)),
    text=st.one_of(st.text(max_size=2000), st.just("user unknown " * 5000), st.just("(" * 100_000)),
    permanent=st.one_of(st.none(), st.booleans()),
)
def test_classify_reply_never_raises_and_is_fast(code, enhanced, text, permanent):
    started = time.perf_counter()
    result = classify_reply(code, enhanced, text, permanent=permanent)
    assert time.perf_counter() - started < 0.5
    assert isinstance(result.bounce_class, str) and result.bounce_class
    assert result.disposition in ("hard", "soft", "complaint", "autoreply", "delivered", "none")
