"""The development default, SQLite without Redis, from submission to delivery outcomes.

The suite runs on PostgreSQL, so the store's transactional path, the ORM claims (claim,
claim_due), the recording's non-PostgreSQL statements (taking pending effects, the attempt rows,
refreshing messages) and the sweeper's replay run only when the database is something else:
tests/delivery/sqlite_scenario.py drives them in a process of its own on a SQLite file, through
the service layer and the Celery task's functions, in MX mode against a real SMTP sink on
loopback found through real DNS answers. These tests read what it observed."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.delivery.sink import SMTPSink
from tests.support.dns_server import DNSTestServer

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = Path(__file__).with_name("sqlite_scenario.py")
DELIVERED = ("ok@dest.test", "one@dest.test", "raw@dest.test", "hidden@dest.test", "keyed@dest.test")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(observations, the sink's received messages) of one scenario run."""
    folder = tmp_path_factory.mktemp("sqlite-dev")
    sink, dns = SMTPSink().start(), DNSTestServer().start()
    dns.add("dest.test", "MX", "10 mx.dest.test.")
    dns.add("mx.dest.test", "A", "127.0.0.1")
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "DISPATCH_ENV", "DJANGO_SETTINGS_MODULE")
           and not k.startswith("DISPATCH_")}
    env.update(
        DATABASE_URL=f"sqlite:///{folder / 'db.sqlite3'}", DISPATCH_VAR_DIR=str(folder / "var"),
        DISPATCH_ENV="development", DISPATCH_DELIVERY_MODE="mx",
        DISPATCH_OUTBOUND_SMTP_PORT=str(sink.port), DISPATCH_OUTBOUND_ALLOW_PRIVATE="true",
        DISPATCH_DNS_NAMESERVERS=f"127.0.0.1:{dns.port}", DISPATCH_DNS_TIMEOUT="1",
        DISPATCH_OUTBOUND_CONNECT_TIMEOUT="2", DISPATCH_OUTBOUND_COMMAND_TIMEOUT="5",
    )
    try:
        done = subprocess.run([sys.executable, str(SCENARIO), str(folder / "observed.json")], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-5000:]
        yield json.loads((folder / "observed.json").read_text()), list(sink.messages)
    finally:
        sink.stop()
        dns.stop()


def recipients(observed, step):
    return observed[step]["recipients"]


def message(observed, step, subject):
    return observed[step]["messages"][observed["messages"][subject]]


def events_of(observed, step, email):
    return [e["type"] for e in observed[step]["events"] if e["email"] == email]


def test_api_and_smtp_submissions_are_stored_queued_with_their_sent_events(run):
    observed, _ = run
    submitted = observed["submitted"]
    assert {email: r["status"] for email, r in submitted["recipients"].items()} == {
        email: "queued" for email in ("ok@dest.test", "defer@dest.test", "reject@dest.test", "one@dest.test",
                                      "spam@dest.test", "raw@dest.test", "hidden@dest.test", "reject2@dest.test",
                                      "keyed@dest.test")
    }
    sources = {subject: message(observed, "submitted", subject)["source"] for subject in ("Mixed", "Batch 1", "Raw 1")}
    assert sources == {"Mixed": "api", "Batch 1": "api", "Raw 1": "smtp"}
    assert [len(r["data"]["recipients"]) for r in observed["submit_responses"]] == [3, 1, 1, 2, 1, 1]
    assert submitted["event_counts"] == {"sent": 9}
    assert submitted["usage"][0]["emails_sent"] == 9
    assert submitted["webhook_deliveries"] == []  # the endpoint takes delivered and bounced only


def test_an_idempotency_key_replays_the_first_response_and_refuses_another_body(run):
    observed, _ = run
    idempotency = observed["idempotency"]
    assert idempotency["replayed"] is True and idempotency["replay"] == idempotency["first"]
    assert observed["idempotency_reused"] == "IDEMPOTENCY_KEY_REUSED"
    keyed = [r for r in recipients(observed, "submitted").values() if r["message"] == idempotency["first"]["data"]["id"]]
    assert len(keyed) == 1 and len(observed["submitted"]["messages"]) == 6


def test_an_accepted_recipient_is_delivered_signed_with_its_attempt_event_and_message_status(run):
    observed, received = run
    first = recipients(observed, "first")
    for email in DELIVERED:
        r = first[email]
        assert (r["status"], r["attempts"], r["code"], r["enhanced"]) == ("delivered", 1, 250, "2.0.0"), email
        assert r["delivered_at"] and r["lease_until"] is None and r["effects_pending"] is False
        assert r["delivery_attempts"] == [
            {"outcome": "delivered", "code": 250, "enhanced": "2.0.0", "mx_host": "mx.dest.test", "remote_ip": "127.0.0.1"}
        ]
        assert events_of(observed, "first", email) == ["sent", "delivered"]
    for subject in ("Batch 1", "Raw 1"):
        m = message(observed, "first", subject)
        assert m["status"] == "delivered" and m["delivered_at"] and m["bounce_type"] is None
    copy = next(m for m in received if m.rcpt_tos == ["raw@dest.test"])
    assert copy.data.startswith(b"DKIM-Signature:") and b"d=example.com" in copy.data
    assert copy.mail_from.endswith("@bounces.example.com")
    assert b"hidden@dest.test" not in copy.data  # the Bcc recipient got its own copy
    assert observed["first"]["usage"][0]["delivered"] == 5


def test_a_4xx_reply_defers_the_recipient_with_its_next_retry_set(run):
    observed, received = run
    deferred = recipients(observed, "first")["defer@dest.test"]
    assert (deferred["status"], deferred["attempts"], deferred["code"], deferred["enhanced"]) == ("deferred", 1, 451, "4.2.1")
    # DISPATCH_RETRY_BASE_DELAY (60 s) +-25 %
    assert 40 < deferred["retry_in"] < 80
    assert deferred["lease_until"] is None and deferred["effects_pending"] is False
    assert [a["outcome"] for a in deferred["delivery_attempts"]] == ["deferred"]
    [event] = [e["payload"] for e in observed["first"]["events"] if e["type"] == "deferred"]
    assert event["recipient"] == "defer@dest.test" and event["attempt"] == 1 and event["next_attempt_at"]
    assert event["response"] == {"code": 451, "enhanced_status": "4.2.1", "content": "mailbox busy, try later"}
    assert not [m for m in received if "defer@dest.test" in m.rcpt_tos]


def test_a_5xx_reply_bounces_with_its_classification_and_a_hard_bounce_suppresses_the_address(run):
    observed, _ = run
    first = recipients(observed, "first")
    bounced = {email: (first[email]["status"], first[email]["code"], first[email]["enhanced"],
                       first[email]["bounce_class"], first[email]["bounce_type"])
               for email in ("reject@dest.test", "reject2@dest.test", "spam@dest.test")}
    assert bounced == {
        "reject@dest.test": ("bounced", 550, "5.1.1", "InvalidRecipient", "hard"),
        "reject2@dest.test": ("bounced", 550, "5.1.1", "InvalidRecipient", "hard"),
        "spam@dest.test": ("bounced", 554, "5.7.1", "SpamContent", "soft"),
    }
    assert all(first[email]["bounced_at"] for email in bounced)
    [event] = [e["payload"] for e in observed["first"]["events"] if e["type"] == "bounced" and e["email"] == "reject@dest.test"]
    assert (event["bounce_classification"], event["bounce_type"]) == ("InvalidRecipient", "hard")
    # hard bounces suppress the address, a soft one does not
    assert sorted((s["email"], s["source"], s["bounce_class"]) for s in observed["first"]["suppressions"]) == [
        ("reject2@dest.test", "bounce", "InvalidRecipient"), ("reject@dest.test", "bounce", "InvalidRecipient")]
    usage = observed["first"]["usage"][0]
    assert (usage["hard_bounce"], usage["soft_bounce"]) == (2, 1)
    # ... and the next submission to it (any case) is suppressed, the other recipient is delivered
    assert observed["resubmit_response"]["data"]["recipients"] == [
        {"email": "REJECT@dest.test", "status": "suppressed"}, {"email": "fresh@dest.test", "status": "queued"}]
    after = recipients(observed, "resubmit")
    assert after["REJECT@dest.test"]["status"] == "suppressed" and after["REJECT@dest.test"]["delivery_attempts"] == []
    assert after["fresh@dest.test"]["status"] == "delivered" and observed["resubmit_drained"] is True
    assert message(observed, "resubmit", "After the bounce")["status"] == "delivered"


def test_each_message_takes_the_aggregate_status_of_its_recipients(run):
    observed, _ = run
    statuses = {subject: (message(observed, "first", subject)["status"], message(observed, "first", subject)["bounce_type"])
                for subject in ("Mixed", "Batch 1", "Batch 2", "Raw 1", "Raw 2")}
    assert statuses == {
        "Mixed": ("deferred", "hard"),  # delivered + deferred + hard bounce: still waiting on its retry
        "Batch 1": ("delivered", None),
        "Batch 2": ("bounced", "soft"),
        "Raw 1": ("delivered", None),
        "Raw 2": ("bounced", "hard"),
    }
    assert message(observed, "first", "Raw 2")["bounced_at"]


def test_running_the_task_again_sends_nothing_twice_and_a_due_retry_is_attempted_once_more(run):
    observed, received = run
    assert observed["again_handled"] == 0
    for email, before in recipients(observed, "first").items():
        again = recipients(observed, "again")[email]
        assert (again["status"], again["attempts"], again["delivery_attempts"]) == \
               (before["status"], before["attempts"], before["delivery_attempts"]), email
    assert observed["again"]["event_counts"] == observed["first"]["event_counts"]

    assert observed["retried_handled"] == 1  # only the deferred recipient was due
    retried = recipients(observed, "retried")
    assert retried["defer@dest.test"]["attempts"] == 2
    assert [a["outcome"] for a in retried["defer@dest.test"]["delivery_attempts"]] == ["deferred", "deferred"]
    assert retried["defer@dest.test"]["retry_in"] > 80  # the second delay doubles (120 s +-25 %)
    for email in (*DELIVERED, "reject@dest.test", "spam@dest.test"):
        assert retried[email]["attempts"] == 1, email
    # every accepted address received exactly one copy, over the whole run
    assert sorted(address for m in received for address in m.rcpt_tos) == sorted((*DELIVERED, "fresh@dest.test"))


def test_the_sweeper_applies_the_effects_a_dead_worker_left_pending_once(run):
    observed, _ = run
    assert observed["late_recorded"] is True
    before = recipients(observed, "late_before_sweep")["late@dest.test"]
    assert (before["status"], before["effects_pending"], before["delivery_attempts"]) == ("delivered", True, [])
    assert events_of(observed, "late_before_sweep", "late@dest.test") == ["sent"]
    assert message(observed, "late_before_sweep", "Dead worker")["status"] == "queued"

    assert observed["late_replayed"] == 1
    after = recipients(observed, "replayed")["late@dest.test"]
    assert (after["effects_pending"], after["lease_until"]) == (False, None)
    assert [(a["outcome"], a["code"]) for a in after["delivery_attempts"]] == [("delivered", 250)]
    assert events_of(observed, "replayed", "late@dest.test") == ["sent", "delivered"]
    assert message(observed, "replayed", "Dead worker")["status"] == "delivered"
    assert observed["replayed_again"] == 0


def test_webhook_deliveries_are_created_for_the_subscribed_outcome_events_only(run):
    observed, _ = run
    deliveries = observed["replayed"]["webhook_deliveries"]
    assert {d["endpoint"] for d in deliveries} == {observed["endpoint"]}
    assert sorted((d["type"], d["email"]) for d in deliveries) == sorted(
        [("delivered", email) for email in (*DELIVERED, "fresh@dest.test", "late@dest.test")]
        + [("bounced", email) for email in ("reject@dest.test", "reject2@dest.test", "spam@dest.test")]
    )


def test_an_outcome_whose_commit_reply_was_lost_is_kept_not_taken_for_a_lost_lease(run):
    """The ledger UPDATE committed but failed on its way back: the retry finds the row carrying
    this lease's outcome and keeps it (one attempt, effects applied once)."""
    observed, _ = run
    assert observed["lost_recorded"] is True
    lost = recipients(observed, "reply_lost")["lost@dest.test"]
    assert (lost["status"], lost["attempts"], lost["effects_pending"], lost["lease_until"]) == ("delivered", 1, False, None)
    assert [a["outcome"] for a in lost["delivery_attempts"]] == ["delivered"]
    assert events_of(observed, "reply_lost", "lost@dest.test") == ["sent", "delivered"]
    assert message(observed, "reply_lost", "Reply lost")["status"] == "delivered"
