"""manage.py classify_bounce FILE... — parse report messages with the production parser.

Prints one JSON object per line per recipient:
    {"file", "recipient", "action", "status", "bounce_class", "disposition", "feedback_type"}
A message with no recipient prints one line with recipient null (disposition "none" when it is
not a report at all). "-" reads standard input. Exit status 1 when a file could not be read.
"""
import json
import sys

from django.core.management.base import BaseCommand

from sending.bounces.parse import MAX_BYTES, parse_report


class Command(BaseCommand):
    help = "Classify bounce / complaint / auto-reply messages; one JSON line per recipient."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", metavar="FILE", help="message file (RFC 5322), or - for stdin")

    def handle(self, *args, files, **options):
        failed = False
        for name in files:
            try:
                if name == "-":
                    raw = sys.stdin.buffer.read(MAX_BYTES)
                else:
                    with open(name, "rb") as handle:
                        raw = handle.read(MAX_BYTES)
            except OSError as exc:
                self.stderr.write(f"{name}: {exc.strerror or exc}")
                failed = True
                continue
            for line in rows(name, parse_report(raw)):
                self.stdout.write(json.dumps(line, ensure_ascii=False))
        if failed:
            sys.exit(1)


def rows(name, report):
    if not report.recipients:
        # A complaint or auto-reply that names nobody still says what it is.
        disposition = {"arf": "complaint", "autoreply": "autoreply"}.get(report.kind, "none")
        yield {"file": name, "recipient": None, "action": None, "status": None, "bounce_class": None,
               "disposition": disposition, "feedback_type": None}
        return
    for result in report.recipients:
        yield {
            "file": name,
            "recipient": result.recipient,
            "action": result.action,
            "status": result.status or None,
            "bounce_class": result.bounce_class,
            "disposition": result.disposition,
            "feedback_type": result.feedback_type or None,
        }
