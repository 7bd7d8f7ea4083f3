import io
import json

import pytest
from django.core.management import call_command

from sending.bounces.parse import parse_report

DSN = b"""From: MAILER-DAEMON@mx.example.org
To: b-1-aaaaaaaaaa@bounces.shop.example
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; alice@example.org
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 user unknown

Final-Recipient: rfc822; bob@example.org
Action: failed
Status: 5.7.1
Diagnostic-Code: smtp; 550 5.7.1 blocked by reputation policy
--B--
"""


def run(*files):
    out, err = io.StringIO(), io.StringIO()
    call_command("classify_bounce", *files, stdout=out, stderr=err)
    return [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


def test_it_prints_one_json_line_per_recipient(tmp_path):
    path = tmp_path / "dsn.eml"
    path.write_bytes(DSN)
    lines, _ = run(str(path))
    assert lines == [
        {"file": str(path), "recipient": "alice@example.org", "action": "failed", "status": "5.1.1",
         "bounce_class": "InvalidRecipient", "disposition": "hard", "feedback_type": None},
        {"file": str(path), "recipient": "bob@example.org", "action": "failed", "status": "5.7.1",
         "bounce_class": "SpamBlock", "disposition": "soft", "feedback_type": None},
    ]


def test_it_uses_the_production_parser_on_the_corpus(corpus_dir):
    paths = sorted((corpus_dir / "eml").glob("arf-*.eml"))[:2] + sorted((corpus_dir / "eml").glob("lhost-exim-*.eml"))[:3]
    lines, _ = run(*map(str, paths))
    expected = []
    for path in paths:
        report = parse_report(path.read_bytes())
        expected.extend((str(path), r.recipient, r.disposition, r.feedback_type or None) for r in report.recipients)
    assert [(line["file"], line["recipient"], line["disposition"], line["feedback_type"]) for line in lines] == expected


def test_a_message_that_is_not_a_report_prints_disposition_none(tmp_path):
    path = tmp_path / "hello.eml"
    path.write_bytes(b"From: a@example.org\nSubject: hello\n\nhi\n")
    lines, _ = run(str(path))
    assert lines == [{"file": str(path), "recipient": None, "action": None, "status": None, "bounce_class": None,
                      "disposition": "none", "feedback_type": None}]


def test_a_complaint_naming_nobody_still_prints_complaint(corpus_dir):
    lines, _ = run(str(corpus_dir / "eml" / "arf-15.eml"))
    assert [(line["recipient"], line["disposition"]) for line in lines] == [(None, "complaint")]


def test_an_unreadable_file_is_reported_and_the_exit_status_is_1(tmp_path):
    good = tmp_path / "dsn.eml"
    good.write_bytes(DSN)
    with pytest.raises(SystemExit) as exit_info:
        run(str(tmp_path / "missing.eml"), str(good))
    assert exit_info.value.code == 1
