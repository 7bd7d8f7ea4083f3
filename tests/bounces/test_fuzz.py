"""Mutated real reports: the parser never raises and never takes long."""
import pathlib
import time

from hypothesis import HealthCheck, given, settings, strategies as st

from sending.bounces.parse import parse_report

from .conftest import CORPUS

SAMPLES = sorted((CORPUS / "eml").glob("*.eml"))[::7] if (CORPUS / "eml").is_dir() else []
SEEDS = [path.read_bytes() for path in SAMPLES] or [
    b"From: MAILER-DAEMON@x.example\nSubject: failure notice\n\n<a@b.example>:\n550 5.1.1 user unknown\n"]

TOKENS = [b"\n", b"\n\n", b"--", b":", b";", b"<", b">", b"@", b"\x00", b"\xff\xfe", b"=?utf-8?b?", b"Content-Type: multipart/report; boundary=",
          b"Final-Recipient: rfc822; ", b"Action: ", b"Status: 5.1.1", b"Diagnostic-Code: smtp; 550", b"message/delivery-status",
          b"message/feedback-report", b"Feedback-Type: abuse", b"Content-Transfer-Encoding: base64\n", b">>> DATA\n<<< 550 ",
          b"(" * 50, b"a" * 5000, b"user unknown " * 200, b"{\"notificationType\": \"Bounce\", \"bounce\": {\"bouncedRecipients\": [",
          b'"' * 300]


@st.composite
def mutated_reports(draw):
    raw = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(raw)))
        operation = draw(st.sampled_from(["insert", "delete", "replace", "truncate", "duplicate"]))
        if operation == "insert":
            raw[position:position] = draw(st.sampled_from(TOKENS)) if draw(st.booleans()) else draw(st.binary(max_size=64))
        elif operation == "delete":
            del raw[position:position + draw(st.integers(1, 400))]
        elif operation == "replace":
            raw[position:position + 1] = draw(st.binary(min_size=1, max_size=1))
        elif operation == "truncate":
            del raw[position:]
        else:
            raw[position:position] = raw[max(0, position - 2000):position]
    return bytes(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated_reports())
def test_mutated_reports_never_raise_and_finish_fast(raw):
    started = time.perf_counter()
    report = parse_report(raw)
    assert time.perf_counter() - started < 1.0
    assert report.kind in ("dsn", "arf", "autoreply", "not_bounce")
    for result in report.recipients:
        assert "@" in result.recipient
        assert result.disposition in ("hard", "soft", "complaint", "autoreply", "delivered")
        assert len(result.diagnostic) <= 1000


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=4096))
def test_random_bytes_never_raise(raw):
    assert parse_report(raw).kind in ("dsn", "arf", "autoreply", "not_bounce")
