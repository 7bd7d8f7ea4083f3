"""Inbound reports: what the inbound MX accepts, how a stored report is processed.

The inbound MX (smtp_gateway/inbound.py) accepts mail only for addresses `address_accepted`
approves, stores it with `reports_store` (committed before it answers 250) and queues
`report_process` by id; a beat sweeper processes whatever the broker lost.

Processing a report (`report_process`, idempotent: a processed report is never applied twice):

1. parse it (`parse_report`: DSN, ARF, auto-reply or nothing);
2. find the original recipient rows — the VERP envelope recipient first (it names one recipient
   row and is signed), else our Message-ID (or the client's own, within the tenants that own the
   addressed domain) plus the reported address, else the X-Dispatch-Message-Id of the returned
   copy, else a signed List-Unsubscribe token or VERP return path quoted in the returned copy;
3. apply each recipient result: a final failure bounces the recipient (hard ones are suppressed),
   a delay does nothing, a complaint emits `complained` and suppresses, the rest is recorded.

Scope: a report only ever touches rows of the tenant its envelope address belongs to (the VERP
recipient's tenant, or the tenants owning the domain of a feedback address).
"""
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from dispatch_site import crypto

from ..models import InboundReport, Message, Recipient, Suppression
from . import verp
from .parse import RecipientResult, parse_report

log = logging.getLogger(__name__)

PROCESS_TASK = "sending.bounces.tasks.process_inbound_report"
MAX_STORED_BYTES = 1024 * 1024      # the parser reads no more than this either
MAX_ATTEMPTS = 5                    # a report that keeps failing is marked processed with the error
SWEEP_AFTER = timedelta(minutes=1)  # unprocessed this long: the task was lost, the sweeper takes it
SWEEP_LIMIT = 200
PRUNE_BATCH = 5000

Status = Recipient.Status
# Statuses a recipient can leave for "bounced" on a report: it was (or is being) sent.
_BOUNCEABLE = {Status.QUEUED, Status.SENDING, Status.DEFERRED, Status.DELIVERED, Status.FAILED, Status.BOUNCED}
_VERP_IN_TEXT = re.compile(rb"\bb-[0-9a-z]{1,13}-[a-z2-7]{10}@[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?", re.IGNORECASE)
_MAX_QUOTED_IDS = 10
_ACTIONABLE = ("hard", "soft", "complaint")


# --- what the inbound MX accepts ------------------------------------------------------------------
def return_path_domains(recipient) -> set:
    """The return-path domains delivery may have used for `recipient` (see the delivery engine:
    the tenant's Domain for the From domain or its closest parent, else the From domain itself)."""
    from domains.models import Domain

    sub = settings.DISPATCH_RETURN_PATH_SUBDOMAIN
    from_domain = recipient.message.from_address.rpartition("@")[2].lower()
    labels = from_domain.split(".")
    names = [".".join(labels[i:]) for i in range(len(labels) - 1)]
    owned = Domain.objects.filter(tenant_id=recipient.tenant_id, name__in=names).values_list("name", flat=True)
    return {f"{sub}.{from_domain}"} | {f"{sub}.{name}" for name in owned}


def verp_recipient(address):
    """The Recipient a VERP return path stands for, or None when the address is not a valid,
    untampered VERP address at a return-path domain of that recipient's tenant."""
    recipient_id = verp.decode(address)
    if recipient_id is None:
        return None
    recipient = Recipient.objects.select_related("message", "tenant").filter(pk=recipient_id).first()
    if recipient is None or verp.return_path_domain_of(address) not in return_path_domains(recipient):
        return None
    return recipient


def feedback_tenant_ids(address) -> list:
    """The tenants owning the domain of a feedback address `fbl@<return-path domain>` ([] if none)."""
    from domains.models import Domain

    if not verp.is_feedback_address(address):
        return []
    prefix = settings.DISPATCH_RETURN_PATH_SUBDOMAIN + "."
    domain = verp.return_path_domain_of(address)
    if not domain.startswith(prefix):
        return []
    return list(Domain.objects.filter(name=domain[len(prefix):]).values_list("tenant_id", flat=True).distinct())


def address_accepted(address) -> bool:
    """Whether the inbound MX takes mail for `address` (RCPT TO): our VERP return paths and the
    feedback addresses of known domains. Everything else is refused — never a relay."""
    return verp_recipient(address) is not None or bool(feedback_tenant_ids(address))


# --- storing and queueing -----------------------------------------------------------------------
def reports_store(*, envelope_from, rcpt_tos, raw: bytes, remote_ip="") -> list:
    """Store one report per envelope recipient (committed when this returns). Returns their ids."""
    raw = bytes(raw[:MAX_STORED_BYTES])
    reports = []
    with transaction.atomic():
        for address in rcpt_tos:
            report = InboundReport(
                id=uuid.uuid4(), envelope_from=(envelope_from or "")[:320], envelope_to=address[:320],
                remote_ip=(remote_ip or "")[:45], size_bytes=len(raw),
            )
            report.raw = crypto.encrypt(raw, report.raw_associated_data)
            reports.append(report)
        InboundReport.objects.bulk_create(reports)
    return [report.id for report in reports]


def reports_enqueue(report_ids):
    """Queue processing by id. A broker failure is logged: the sweeper processes the rows later."""
    from dispatch_site.celery import app as celery_app

    for report_id in report_ids:
        try:
            celery_app.send_task(PROCESS_TASK, args=[str(report_id)], queue="default", retry=False)
        except Exception:  # noqa: BLE001 - any broker failure: the sweeper recovers
            log.warning("could not enqueue inbound report %s; the sweeper will process it", report_id, exc_info=True)


def reports_sweep(*, now=None, limit=SWEEP_LIMIT) -> int:
    """Process reports still unprocessed a minute after they arrived (lost or failed tasks), and
    delete processed ones past DISPATCH_INBOUND_REPORT_RETENTION_DAYS. Returns how many it processed."""
    now = now or timezone.now()
    reports_prune(now=now)
    cutoff = now - SWEEP_AFTER
    ids = list(
        InboundReport.objects.filter(processed_at__isnull=True, received_at__lt=cutoff)
        .order_by("received_at").values_list("id", flat=True)[:limit]
    )
    for report_id in ids:
        try:
            report_process(report_id=report_id)
        except Exception:  # noqa: BLE001 - one broken report must not stop the sweep
            log.exception("inbound report %s: processing failed", report_id)
    return len(ids)


def reports_prune(*, now=None, batch=PRUNE_BATCH) -> int:
    cutoff = (now or timezone.now()) - timedelta(days=settings.DISPATCH_INBOUND_REPORT_RETENTION_DAYS)
    ids = list(InboundReport.objects.filter(processed_at__lt=cutoff).values_list("id", flat=True)[:batch])
    if ids:
        InboundReport.objects.filter(pk__in=ids).delete()
    return len(ids)


# --- processing -----------------------------------------------------------------------------------
@dataclass
class _Target:
    result: RecipientResult
    recipient: Recipient
    matched_by: str


def report_process(*, report_id) -> dict:
    """Parse and apply one stored report; returns its result. Safe to call again: a processed
    report is returned as it is."""
    with transaction.atomic():
        attempts = _count_attempt(report_id)
        if attempts is None:
            report = InboundReport.objects.filter(pk=report_id).first()
            return report.result if report is not None else {}
    with transaction.atomic():
        report = InboundReport.objects.select_for_update().filter(pk=report_id).first()
        if report is None or report.processed_at is not None:
            return report.result if report is not None else {}
        if attempts > MAX_ATTEMPTS:
            return _finish(report, {"error": f"gave up after {MAX_ATTEMPTS} failed attempts"})
        try:
            raw = crypto.decrypt(report.raw, report.raw_associated_data)
        except crypto.DecryptionError as exc:
            return _finish(report, {"error": f"cannot decrypt the stored report: {exc}"})
        parsed = parse_report(raw)
        report.kind = parsed.kind
        targets, unmatched = _targets(report, parsed, raw)
        entries = [_apply(report, target) for target in targets]
        entries += [_entry(result, None, "", "no matching recipient of ours") for result in unmatched]
        entries += [
            _entry(result, None, "", f"ignored ({result.disposition})")
            for result in parsed.recipients if result.disposition not in _ACTIONABLE
        ]
        if targets:
            first = targets[0].recipient
            report.tenant_id, report.message_id, report.recipient_id = first.tenant_id, first.message_id, first.id
        return _finish(report, {"kind": parsed.kind, "recipients": entries})


def _count_attempt(report_id):
    updated = InboundReport.objects.filter(pk=report_id, processed_at__isnull=True).update(attempts=F("attempts") + 1)
    if not updated:
        return None
    return InboundReport.objects.filter(pk=report_id).values_list("attempts", flat=True).first()


def _finish(report, result):
    report.result = result
    report.processed_at = timezone.now()
    report.save(update_fields=["kind", "result", "processed_at", "tenant", "message", "recipient"])
    return result


def _entry(result, recipient, matched_by, outcome):
    return {
        "recipient": result.recipient, "action": result.action, "status": result.status,
        "bounce_class": result.bounce_class, "disposition": result.disposition,
        "feedback_type": result.feedback_type or None,
        "recipient_id": recipient.id if recipient is not None else None, "matched_by": matched_by or None,
        "outcome": outcome,
    }


# --- finding the original recipients ----------------------------------------------------------------
def _targets(report, parsed, raw):
    """(targets, unmatched results). Only results that call for an action are matched."""
    results = [r for r in parsed.recipients if r.disposition in _ACTIONABLE]
    if not results:
        return [], []
    owner = verp_recipient(report.envelope_to)
    if owner is not None:
        # The envelope names the recipient row; the report may call the address differently
        # (forwarding, aliases), so take the result for it, else the report's first one.
        result = _result_for(results, owner.email) or results[0]
        return [_Target(result, owner, "verp")], [r for r in results if r is not result]
    tenant_ids = feedback_tenant_ids(report.envelope_to)
    if not tenant_ids:
        return [], results
    targets, unmatched = [], []
    message, matched_by = _original_message(parsed, tenant_ids)
    quoted = None
    for result in results:
        recipient = _recipient_in(message, result, single=len(results) == 1) if message is not None else None
        how = matched_by
        if recipient is None:
            if quoted is None:
                quoted = _quoted_recipients(raw, tenant_ids)
            recipient, how = _quoted_for(quoted, result, single=len(results) == 1)
        if recipient is None:
            unmatched.append(result)
        else:
            targets.append(_Target(result, recipient, how))
    return targets, unmatched


def _result_for(results, email):
    email = email.lower()
    return next((r for r in results if r.recipient.lower() == email), None)


def _original_message(parsed, tenant_ids):
    """The message the report is about, looked up within `tenant_ids` only."""
    scoped = Message.objects.filter(tenant_id__in=tenant_ids)
    message_id = parsed.original_message_id.strip().strip("<>")
    if message_id:
        found = scoped.filter(message_id=message_id).first() or scoped.filter(header_message_id=message_id).first()
        if found is not None:
            return found, "message_id"
    for name, value in parsed.original_headers.items():
        if name.lower() != "x-dispatch-message-id":
            continue
        value = value.strip().strip("<>")
        try:
            found = scoped.filter(pk=uuid.UUID(value)).first()
        except ValueError:
            found = scoped.filter(message_id=value).first()
        if found is not None:
            return found, "x-dispatch"
    return None, ""


def _recipient_in(message, result, *, single):
    rows = list(Recipient.objects.filter(message=message).select_related("message", "tenant")[:1000])
    email = result.recipient.lower()
    match = next((r for r in rows if r.email.lower() == email), None)
    if match is None and single and len(rows) == 1:
        return rows[0]  # the report hides the address (ARF redaction); the message had one recipient
    return match


def _quoted_recipients(raw, tenant_ids):
    """Recipient rows named by a List-Unsubscribe token (encrypted, or of the old signed-id form) or
    VERP return path quoted in the returned copy (e.g. the Return-Path header inside an ARF
    report), within `tenant_ids`."""
    from ..unsubscribe import MAX_TOKEN_CHARS, read_token

    found = []
    url_re = re.compile(
        re.escape(settings.DISPATCH_PUBLIC_URL.encode())
        + rb"/u/([0-9A-Za-z]{1,20}:[0-9A-Za-z_-]{20,100}|[0-9A-Za-z_-]{80,%d})" % MAX_TOKEN_CHARS
    )
    for match in url_re.finditer(raw[:MAX_STORED_BYTES]):
        claim = read_token(match.group(1).decode())
        if claim is not None:
            found.append((claim.recipient_id, "unsubscribe_token"))
        if len(found) >= _MAX_QUOTED_IDS:
            break
    for match in _VERP_IN_TEXT.finditer(raw[:MAX_STORED_BYTES]):
        address = match.group(0).decode("ascii", "replace")
        recipient = verp_recipient(address)
        if recipient is not None:
            found.append((recipient.id, "verp_quoted"))
        if len(found) >= 2 * _MAX_QUOTED_IDS:
            break
    ids = {recipient_id for recipient_id, _ in found}
    rows = {r.id: r for r in Recipient.objects.filter(pk__in=ids, tenant_id__in=tenant_ids).select_related("message", "tenant")}
    out, seen = [], set()
    for recipient_id, how in found:
        if recipient_id in rows and recipient_id not in seen:
            seen.add(recipient_id)
            out.append((rows[recipient_id], how))
    return out


def _quoted_for(quoted, result, *, single):
    email = result.recipient.lower()
    for recipient, how in quoted:
        if recipient.email.lower() == email:
            return recipient, how
    if single and len(quoted) == 1:
        return quoted[0]
    return None, ""


# --- applying a result ------------------------------------------------------------------------------
def _apply(report, target):
    result, recipient = target.result, target.recipient
    if result.disposition == "complaint":
        outcome = _complain(report, result, recipient)
    elif result.delayed:
        outcome = "delayed: no bounce"
    elif result.action != "failed":
        outcome = f"ignored ({result.action})"
    else:
        outcome = _bounce(report, result, recipient)
    return _entry(result, recipient, target.matched_by, outcome)


def _bounce(report, result, recipient):
    from sending.events import emit
    from sending.services import message_refresh_status
    from sending.suppressions import suppression_add

    bounce_type = "hard" if result.disposition == "hard" else "soft"
    row = Recipient.objects.select_for_update().select_related("message", "tenant").get(pk=recipient.pk)
    if row.status not in _BOUNCEABLE:
        return f"ignored: recipient is {row.status}"
    newly = row.status != Status.BOUNCED
    upgrade = not newly and row.bounce_type != "hard" and bounce_type == "hard"
    text = (result.diagnostic or f"{result.status} {result.bounce_class}").strip()[:1000]
    if newly or upgrade:
        now = timezone.now()
        fields = {
            "status": Status.BOUNCED, "bounce_type": bounce_type, "bounce_class": result.bounce_class[:64],
            "bounced_at": row.bounced_at if upgrade else now, "lease_until": None,
            "last_response_code": result.reply_code, "last_enhanced_status": result.status[:16], "last_response_text": text,
        }
        Recipient.objects.filter(pk=row.pk).update(**fields)
        for name, value in fields.items():
            setattr(row, name, value)
        message_refresh_status(message_id=row.message_id)
    if newly:
        emit(
            "bounced", recipient=row, message=row.message, tenant=row.tenant,
            response={"code": result.reply_code, "enhanced_status": result.status or None, "content": text},
            bounce_classification=result.bounce_class, bounce_type=bounce_type, report_id=str(report.id),
        )
    if bounce_type == "hard":
        _, created = suppression_add(
            tenant=row.tenant, email=row.email, reason=f"hard bounce: {text}"[:1000], source=Suppression.Source.BOUNCE,
            bounce_class=result.bounce_class, source_message=row.message,
        )
        return "bounced hard, suppressed" if created else "bounced hard (already suppressed)"
    if newly and soft_bounce_rule_apply(tenant=row.tenant, email=row.email, bounce_class=result.bounce_class, source_message=row.message):
        return "bounced soft, suppressed after repeated soft bounces"
    return "bounced soft" if newly else "already bounced"


def soft_bounce_rule_apply(*, tenant, email, bounce_class="", source_message=None) -> bool:
    """Suppress `email` when it soft-bounced DISPATCH_SOFT_BOUNCE_SUPPRESS_AFTER times (0 = off)
    within DISPATCH_SOFT_BOUNCE_WINDOW_DAYS. Counts bounced recipient rows, whether the bounce
    came from the delivery engine or from a report. Returns whether a suppression was added."""
    from sending.suppressions import suppression_add

    threshold = settings.DISPATCH_SOFT_BOUNCE_SUPPRESS_AFTER
    if threshold <= 0:
        return False
    since = timezone.now() - timedelta(days=settings.DISPATCH_SOFT_BOUNCE_WINDOW_DAYS)
    count = Recipient.objects.filter(
        tenant=tenant, email__iexact=email, status=Status.BOUNCED, bounce_type="soft", bounced_at__gte=since
    ).count()
    if count < threshold:
        return False
    _, created = suppression_add(
        tenant=tenant, email=email, reason="repeated soft bounces", source=Suppression.Source.BOUNCE,
        bounce_class=bounce_class, source_message=source_message,
    )
    return created


def _complain(report, result, recipient):
    from sending.events import emit
    from sending.suppressions import suppression_add

    feedback_type = (result.feedback_type or "abuse")[:64]
    # The row lock serialises reports about the same recipient, so only one of them emits.
    Recipient.objects.select_for_update().filter(pk=recipient.pk).first()
    already = InboundReport.objects.filter(
        recipient_id=recipient.id, kind=InboundReport.Kind.ARF, processed_at__isnull=False
    ).exclude(pk=report.pk).exists()
    suppression_add(
        tenant=recipient.tenant, email=recipient.email, reason="complaint", source=Suppression.Source.COMPLAINT,
        bounce_class=result.bounce_class, feedback_type=feedback_type, source_message=recipient.message,
    )
    if already:
        return "complaint already recorded"
    emit("complained", recipient=recipient, message=recipient.message, tenant=recipient.tenant,
         feedback_type=feedback_type, report_id=str(report.id))
    return "complained, suppressed"
