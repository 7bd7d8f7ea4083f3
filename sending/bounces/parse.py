"""Parse an inbound report message: RFC 3464 DSN, ARF complaint, auto-reply, or a free-text bounce.

`parse_report(raw)` never raises and never runs long: the input is capped, every regex is bounded,
and any parse error yields a report of kind "not_bounce".

What it returns per recipient: the address, the DSN action, the enhanced status, the reply code,
the diagnostic text, the bounce class and a disposition for the caller:

    hard       suppress the address (it does not exist / its domain does not)
    soft       a failure that says nothing bad about the address (or a delay: action "delayed")
    complaint  an ARF feedback report (feedback_type says which)
    autoreply  a vacation / out-of-office answer: ignore
    delivered  a success DSN (action delivered / relayed / expanded)
    none       not a report at all
"""
from __future__ import annotations

import base64
import binascii
import email
import json
import quopri
import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message
from email.policy import compat32

from .classify import (
    ADDRESS_CLASSES, INVALID_SENDER, MESSAGE_EXPIRED, NO_ANSWER_FROM_HOST, POLICY_RELATED, UNCATEGORIZED,
    ENHANCED_RE as ENHANCED_STATUS_RE, classify_reply, decisive_class, parse_enhanced,
)

MAX_BYTES = 1024 * 1024          # reports larger than this are truncated (the returned copy is the bulk)
MAX_PARTS = 64                   # MIME parts visited
MAX_TEXT = 64 * 1024             # notification text examined
MAX_RECIPIENTS = 100
MAX_DIAGNOSTIC = 1000

DSN = "dsn"
ARF = "arf"
AUTOREPLY = "autoreply"
NOT_BOUNCE = "not_bounce"

FEEDBACK_REPORT = "FeedbackReport"
AUTO_REPLY = "AutoReply"
DELIVERED = "Delivered"


@dataclass
class RecipientResult:
    recipient: str
    action: str = "failed"       # failed | delayed | delivered | relayed | expanded | complained | autoreplied
    status: str = ""             # enhanced status code, "5.1.1"
    reply_code: int | None = None
    diagnostic: str = ""
    bounce_class: str = UNCATEGORIZED
    disposition: str = "soft"    # hard | soft | complaint | autoreply | delivered | none
    feedback_type: str = ""
    remote_mta: str = ""

    @property
    def delayed(self) -> bool:
        return self.action == "delayed"


@dataclass
class Report:
    kind: str = NOT_BOUNCE
    recipients: list[RecipientResult] = field(default_factory=list)
    original_message_id: str = ""
    original_headers: dict[str, str] = field(default_factory=dict)   # X-Dispatch-* of the returned message
    original_to: list[str] = field(default_factory=list)
    original_from: str = ""
    envelope_to: list[str] = field(default_factory=list)             # where the report was sent (VERP)
    subject: str = ""
    reporter: str = ""


# --- small helpers -------------------------------------------------------------------------
ADDR_RE = re.compile(
    r"(?:\"[^\"\\\n]{1,62}\"|[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64})"                # local part (or quoted)
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?){1,8}")
MSGID_RE = re.compile(r"<?([^<>\s]{1,250}@[^<>\s]{1,250}?)>?(?:\s|$)")
REPLY_CODE_RE = re.compile(r"(?<![\d.])([245][0-5]\d)(?:[ -]|$)")
# Local parts of the systems that send reports: never the failed recipient.
_DAEMON_LOCAL = re.compile(r"^(?:mailer-daemon|mailer_daemon|maildaemon|mail-daemon|postmaster-daemon|double-bounce)$",
                           re.IGNORECASE)


def _header(msg: Message, name: str) -> str:
    value = msg.get(name)
    if value is None:
        return ""
    try:
        # decode_header is quadratic in the number of encoded words: cap its input, not only
        # its output, or one hostile Subject costs seconds of CPU (the inbound MX is public).
        return str(make_header(decode_header(str(value)[:4000])))[:2000]
    except Exception:
        return str(value)[:2000]


def _addresses(text: str) -> list[str]:
    seen, out = set(), []
    for match in ADDR_RE.finditer(text[:MAX_TEXT]):
        address = _clean_address(match.group(0))
        if address and address.lower() not in seen:
            seen.add(address.lower())
            out.append(address)
    return out


def _clean_address(address: str) -> str:
    address = address.strip().strip(".'`<>()[]:;,")
    if "@" not in address:
        return ""
    local, _, domain = address.rpartition("@")
    if not (local.startswith('"') and local.endswith('"') and len(local) > 2):
        local = local.strip(".'\"`<(")
    domain = domain.strip(".'\"`>)]:;,")
    if not local or not domain or "." not in domain:
        return ""
    return f"{local}@{domain.lower()}"


def _decode_payload(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if payload is None:
        raw = part.get_payload()
        if isinstance(raw, list):
            return "\n\n".join(_message_text(sub) for sub in raw[:MAX_PARTS])
        return str(raw or "")[:MAX_TEXT]
    charset = part.get_content_charset() or "utf-8"
    if charset.lower() in ("iso-2022-jp", "iso2022jp"):
        charset = "iso2022_jp"
    try:
        return payload[:MAX_TEXT].decode(charset, errors="replace")
    except (LookupError, TypeError):
        return payload[:MAX_TEXT].decode("utf-8", errors="replace")


def _message_text(msg: Message) -> str:
    """Header block (+ body) of a sub-message as text, for report fields parsed by the email package."""
    try:
        lines = [f"{k}: {v}" for k, v in msg.items()]
        body = msg.get_payload()
        if isinstance(body, str) and body.strip():
            lines.append("")
            lines.append(body)
        return "\n".join(lines)
    except Exception:
        return ""


def _strip_html(html: str) -> str:
    html = re.sub(r"(?is)<(script|style)[^>]{0,200}>.{0,20000}?</\1>", " ", html)
    html = re.sub(r"(?i)<br\s{0,5}/?>|</p>|</div>|</tr>|</li>", "\n", html)
    html = re.sub(r"<[^>]{0,2000}>", " ", html)
    for entity, char in (("&nbsp;", " "), ("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"), ("&quot;", '"'), ("&#39;", "'")):
        html = html.replace(entity, char)
    return re.sub(r"[ \t]{2,}", " ", html)


def _field_list(block: str) -> list[tuple[str, str]]:
    """RFC 822-style fields in order, names lower-cased, continuation lines unfolded."""
    out: list[list[str]] = []
    for line in block.splitlines():
        if line[:1] in (" ", "\t") and out and out[-1][0]:
            out[-1][1] = (out[-1][1] + " " + line.strip())[:MAX_DIAGNOSTIC * 2]
            continue
        key, sep, value = line.partition(":")
        if sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,60}", key.strip()):
            out.append([key.strip().lower(), value.strip()])
        elif out:
            out.append(["", ""])  # a stray line ends the previous field's continuation
    return [(k, v) for k, v in out if k]


def _strip_type(value: str) -> str:
    """'rfc822; <a@b>' -> 'a@b'; 'smtp; 550 ...' -> '550 ...'."""
    _, sep, rest = value.partition(";")
    return (rest if sep and len(_) < 20 else value).strip()


# --- MIME walk -----------------------------------------------------------------------------
@dataclass
class _Parts:
    texts: list[str] = field(default_factory=list)            # human-readable text outside the returned message
    delivery_status: list[str] = field(default_factory=list)
    feedback: list[str] = field(default_factory=list)
    returned: Message | None = None
    returned_headers_text: str = ""


_DSN_TYPES = {"message/delivery-status", "message/global-delivery-status", "text/delivery-status"}
_RETURNED_TYPES = {"message/rfc822", "message/global"}
_HEADERS_TYPES = {"text/rfc822-headers", "text/rfc822-header", "message/rfc822-headers", "message/global-headers", "text/rfc822"}


def _walk(msg: Message) -> _Parts:
    parts = _Parts()
    stack = [msg]
    visited = 0
    while stack and visited < MAX_PARTS:
        part = stack.pop(0)
        visited += 1
        ctype = part.get_content_type()
        if ctype in _DSN_TYPES:
            parts.delivery_status.append(_decode_report_part(part))
        elif ctype == "message/feedback-report":
            parts.feedback.append(_decode_report_part(part))
        elif ctype in _RETURNED_TYPES:
            payload = part.get_payload()
            if parts.returned is None:
                if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                    parts.returned = payload[0]
                elif isinstance(payload, str):
                    parts.returned = email.message_from_string(payload[:MAX_TEXT], policy=compat32)
        elif ctype in _HEADERS_TYPES:
            if not parts.returned_headers_text:
                parts.returned_headers_text = _decode_payload(part)
        elif part.is_multipart():
            stack[0:0] = [p for p in part.get_payload() if isinstance(p, Message)]
        elif ctype == "text/html":
            parts.texts.append("\x00HTML" + _strip_html(_decode_payload(part)))
        elif part.get_content_maintype() not in ("image", "application", "audio", "video", "message"):
            # text/*, unknown types, and a multipart whose broken boundary left its body as text
            parts.texts.append(_decode_payload(part))
    # Plain text wins over its HTML alternative; HTML only when there is no plain text at all.
    plain = [t for t in parts.texts if not t.startswith("\x00HTML")]
    parts.texts = plain or [t[5:] for t in parts.texts]
    return parts


def _decode_report_part(part: Message) -> str:
    payload = part.get_payload()
    if isinstance(payload, list):
        text = "\n\n".join(_message_text(sub) for sub in payload[:MAX_PARTS] if isinstance(sub, Message))
    else:
        text = str(payload or "")
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if encoding == "base64":
        try:
            text = base64.b64decode(re.sub(r"[^A-Za-z0-9+/=]", "", text) + "===", validate=False).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            pass
    elif encoding == "quoted-printable":
        text = quopri.decodestring(text.encode("utf-8", "replace")).decode("utf-8", "replace")
    return text[:MAX_TEXT]


# --- the returned (original) message ----------------------------------------------------------
def _original_from_headers(report: Report, headers: Message) -> None:
    message_id = _header(headers, "Message-ID")
    match = MSGID_RE.search(message_id + " ")
    if match and not report.original_message_id:
        report.original_message_id = match.group(1)
    for key in headers.keys():
        if key.lower().startswith("x-dispatch-") and key not in report.original_headers:
            report.original_headers[key] = _header(headers, key)
    if not report.original_to:
        report.original_to = _addresses(_header(headers, "To") + " " + _header(headers, "Cc"))
    if not report.original_from:
        found = _addresses(_header(headers, "From"))
        report.original_from = found[0] if found else ""


_EMBEDDED_START = re.compile(
    # Phrases that only ever introduce the returned copy ...
    r"^[ \t>]{0,4}[-=*_#]{0,40}[ \t]*(?:"
    r"this is a copy of (?:the|your) message|below (?:this line )?is a copy|original message (?:headers|follows)|"
    r"message headers follow|headers of the original|unsent message (?:below|follows)|message text follows|"
    r"(?:included|enclosed) is (?:a copy|the original)|a copy of the original|start of returned|"
    r"original message headers|returned message follows|below is a copy|original mail as follows"
    r")"
    # ... and generic ones that count only as a separator line ("----- Original message -----").
    r"|^[ \t>]{0,4}(?:[-=*_]{2,}[ \t]*)(?:original message|returned message|undelivered message|original mail|"
    r"returned mail|message\b|the original message|original headers|your message|text of (?:the )?original)",
    re.IGNORECASE | re.MULTILINE)


def _split_embedded(text: str) -> tuple[str, str]:
    """(notification, returned copy) of a free-text bounce that quotes the original inline."""
    match = _EMBEDDED_START.search(text)
    if match and match.start() > 0:
        return text[:match.start()], text[match.start():]
    # No separator line: the returned copy starts at the first run of three header lines, one
    # of them a header only a real message has (a "To:/Date:" summary is not a returned copy).
    for run in _HEADER_RUN.finditer(text):
        if _REAL_HEADER.search(run.group(0)):
            return text[:run.start()], text[run.start():]
    return text, ""


_HEADER_RUN = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]{0,40}:[^\n]{0,998}\n(?:[ \t][^\n]{0,998}\n){0,30}){3,40}", re.MULTILINE)
_REAL_HEADER = re.compile(r"^(?:Received|Return-Path|Message-Id|MIME-Version|Content-Type|DKIM-Signature|X-Mailer):", re.MULTILINE | re.IGNORECASE)


def _headers_in(copy: str) -> Message | None:
    start = re.search(r"^(?:Return-Path|Received|Message-Id|From|Date|Subject|To|DKIM-Signature|X-[A-Za-z-]{1,40}):", copy, re.MULTILINE | re.IGNORECASE)
    if not start:
        return None
    block = copy[start.start():start.start() + 32 * 1024]
    block = "\n".join(line.rstrip() for line in block.splitlines())
    try:
        return email.message_from_string(block, policy=compat32)
    except Exception:
        return None


# --- DSN -------------------------------------------------------------------------------------
_RECIPIENT_FIELDS = ("final-recipient", "original-recipient", "x-actual-recipient")


def _dsn_recipients(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """Per-message fields and per-recipient field groups of a delivery-status body.

    A group ends at a blank line or when a field repeats (MTAs that forget the blank line between
    recipients); fields may come in any order within a group.
    """
    per_message: dict[str, str] = {}
    per_recipient: list[dict[str, str]] = []
    for block in re.split(r"\n[ \t]*\n", text.replace("\r", "")):
        group: dict[str, str] = {}
        groups = [group]
        for key, value in _field_list(block):
            if key in group:
                group = {}
                groups.append(group)
            group[key] = value
        for fields in groups:
            if any(name in fields for name in _RECIPIENT_FIELDS):
                per_recipient.append(fields)
            else:
                for key, value in fields.items():
                    per_message.setdefault(key, value)
    return per_message, per_recipient


def _status_of(value: str) -> str:
    found = parse_enhanced(value, 3000)
    return ".".join(str(n) for n in found) if found else ""


def _best_status(dsn_status: str, diagnostic: str) -> str:
    """The code the remote server gave (in the diagnostic) over the reporting MTA's own summary in
    Status (often a vague x.0.0, or x.4.7 "gave up"), as long as both agree on the class."""
    in_text = _status_of(diagnostic)
    if in_text and (not dsn_status or in_text[0] == dsn_status[0]):
        return in_text
    return dsn_status or in_text


def _reply_code(diagnostic: str) -> int | None:
    match = REPLY_CODE_RE.search(diagnostic[:300])
    return int(match.group(1)) if match else None


# The SMTP command the remote server refused: "user unknown" after DATA means the address was
# accepted at RCPT and the *message* was refused (a filter), after MAIL FROM it is about the sender.
_COMMAND_RE = re.compile(
    r"in reply to (?:the )?(?:end of )?(DATA|RCPT TO|MAIL FROM|RCPT|MAIL)\b|after (?:end of )?(data|RCPT TO|MAIL FROM)\b"
    r"|>>> ?(DATA|RCPT|MAIL)\b|SMTP command:?\s{0,5}(DATA|RCPT|MAIL)\b|did not like our (?:final )?(DATA|RCPT|MAIL)\b",
    re.IGNORECASE)


_TRANSCRIPT_RE = re.compile(r"^[ \t>]{0,3}(>>>|<<<|(?=[245]\d\d [245]\.\d{1,3}\.\d{1,3} <[^>\n]{1,300}>\.\.\.))"
                            r" ?([A-Za-z]{4}|[245]\d\d)", re.MULTILINE)


def _failed_command(text: str) -> str:
    """The command the first real error answered: a sendmail transcript (>>> / <<<) is paired
    line by line (a later "503 need RCPT" after DATA is only a consequence); otherwise the first
    "in reply to X command" / "after X" wording."""
    text = text[:6000]
    command = ""
    answered = ""
    for direction, word in _TRANSCRIPT_RE.findall(text):
        if direction == ">>>":
            command = word.upper()
        elif direction == "":
            # sendmail's own "550 5.1.1 <addr>... User unknown" line: a pipelined RCPT refusal.
            if answered:
                return "RCPT"
        elif answered:
            break
        elif command and word[0] in "45" and word not in ("503", "421"):
            answered = {"RCPT": "RCPT", "DATA": "DATA", "MAIL": "MAIL"}.get(command, "")
            if not answered:
                break
    if answered:
        return answered
    match = _COMMAND_RE.search(text)
    if match:
        return next(g for g in match.groups() if g).split()[0].upper()
    return ""


def _classify(result: RecipientResult, context: str = "", extra: str = "", transcript: str = "") -> None:
    """Set bounce_class and disposition from the result's status, code, diagnostic (+ context)."""
    if result.action in ("delivered", "relayed", "expanded"):
        result.bounce_class, result.disposition = DELIVERED, "delivered"
        return
    permanent = result.action != "delayed"
    text = " ".join(t for t in (result.diagnostic, extra) if t) or context
    verdict = classify_reply(result.reply_code, result.status or None, text, permanent=permanent)
    if verdict.bounce_class == UNCATEGORIZED and context and text is not context:
        verdict = classify_reply(result.reply_code, result.status or None, context, permanent=permanent)
    bounce_class, disposition = verdict.bounce_class, verdict.disposition
    command = _failed_command(result.diagnostic + "\n" + (transcript or context))
    if permanent and bounce_class == NO_ANSWER_FROM_HOST:
        # Time-outs the reporting MTA stopped retrying: the message expired in its queue.
        bounce_class = MESSAGE_EXPIRED
    if bounce_class in ADDRESS_CLASSES:
        if result.status[:4] in ("5.7.", "4.7."):
            # "User unknown" under a security/policy status: ambiguous, keep the address.
            bounce_class, disposition = POLICY_RELATED, "soft"
        elif command == "DATA" and decisive_class(text) != bounce_class:
            # Accepted at RCPT, refused after DATA: a content filter speaking, not a missing mailbox.
            bounce_class, disposition = POLICY_RELATED, "soft"
        elif command == "MAIL" and decisive_class(text) != bounce_class:
            bounce_class, disposition = INVALID_SENDER, "soft"
    elif bounce_class == UNCATEGORIZED and (command == "MAIL" or result.recipient.lower().endswith("@googlegroups.com")):
        # Refused at MAIL FROM; Google Groups bounces a post only when the sender may not post.
        bounce_class = INVALID_SENDER
    result.bounce_class, result.disposition = bounce_class, disposition


def _parse_dsn(report: Report, parts: _Parts, human: str) -> None:
    groups = []
    for text in parts.delivery_status:
        groups.extend(_dsn_recipients(text)[1])
    found = []
    for fields in groups[:MAX_RECIPIENTS]:
        recipient = _clean_address(_first_address(_strip_type(fields.get("final-recipient", "")))
                                   or _first_address(_strip_type(fields.get("original-recipient", "")))
                                   or _first_address(fields.get("x-actual-recipient", "")))
        if recipient:
            found.append((recipient, fields))
    addresses = [recipient for recipient, _ in found]
    for recipient, fields in found:
        diagnostic = _strip_type(fields.get("diagnostic-code", ""))[:MAX_DIAGNOSTIC]
        block = _diagnostic_block(human, recipient, addresses)
        action = (fields.get("action", "").split() or ["failed"])[0].lower().strip(";")
        action = "delivered" if action == "deliverable" else action
        if action not in ("failed", "delayed", "delivered", "relayed", "expanded"):
            action = "failed"
        status_field = fields.get("status", "")
        status = _status_of(status_field)
        status_comment = status_field.partition("(")[2].rstrip(")") if "(" in status_field else ""
        result = RecipientResult(
            recipient=recipient, action=action, status=_best_status(status, diagnostic or block),
            reply_code=_reply_code(diagnostic or block), diagnostic=diagnostic or block,
            remote_mta=_strip_type(fields.get("remote-mta", "")),
        )
        _classify(result, block, extra=status_comment,
                  transcript=_recipient_text(human, recipient, addresses, keep_boilerplate=True))
        _add(report, result)


def _first_address(value: str) -> str:
    found = ADDR_RE.search(value[:500])
    return found.group(0) if found else ""


def _add(report: Report, result: RecipientResult) -> None:
    for existing in report.recipients:
        if existing.recipient.lower() == result.recipient.lower():
            return
    if len(report.recipients) < MAX_RECIPIENTS:
        report.recipients.append(result)


# --- ARF -------------------------------------------------------------------------------------
def _parse_arf(report: Report, parts: _Parts) -> None:
    pairs: list[tuple[str, str]] = []
    for text in parts.feedback:
        pairs.extend(_field_list(text))
    fields = dict(reversed(pairs))
    feedback_type = ((fields.get("feedback-type", "") or "abuse").split() or ["abuse"])[0].lower()
    candidates = [_first_address(v) for k, v in pairs if k == "original-rcpt-to"]
    if not any(candidates):
        candidates = [_first_address(v) for k, v in pairs if k == "removal-recipient"]
    if not any(candidates) and parts.returned is not None:
        candidates = [_first_address(_header(parts.returned, "X-HmXmrOriginalRecipient"))]
    if not any(candidates):
        candidates = list(report.original_to[:1])
    report.kind = ARF
    for recipient in (_clean_address(c) for c in candidates if c):
        if recipient:
            _add(report, RecipientResult(
                recipient=recipient, action="complained", bounce_class=FEEDBACK_REPORT,
                disposition="complaint", feedback_type=feedback_type, diagnostic=fields.get("source-ip", "")))


def _is_non_standard_complaint(msg: Message, parts: _Parts) -> str:
    """Feedback loops that do not follow RFC 5965 (Hotmail JMRP, Apple Mail unsubscribe)."""
    if _header(msg, "X-Apple-Unsubscribe").strip().lower() == "true":
        return "opt-out"
    if parts.returned is not None and _header(parts.returned, "X-HmXmrOriginalRecipient"):
        return "abuse"
    return ""


# --- Amazon SES notifications (JSON, often inside an SNS envelope) -----------------------------
def _parse_ses_json(report: Report, text: str) -> bool:
    text = text.strip()
    if not text.startswith("{"):
        return False
    try:
        data = json.loads(text, strict=False)
        if isinstance(data, dict) and isinstance(data.get("Message"), str):
            data = json.loads(data["Message"], strict=False)
    except (ValueError, RecursionError):
        return False
    if not isinstance(data, dict):
        return False
    kind = str(data.get("notificationType") or data.get("eventType") or "").lower()
    mail = data.get("mail") if isinstance(data.get("mail"), dict) else {}
    for header in mail.get("headers") or []:
        if isinstance(header, dict) and str(header.get("name", "")).lower() == "message-id":
            report.original_message_id = str(header.get("value", "")).strip("<> ")
        elif isinstance(header, dict) and str(header.get("name", "")).lower().startswith("x-dispatch-"):
            report.original_headers[str(header["name"])] = str(header.get("value", ""))[:1000]
    section = data.get(kind) if isinstance(data.get(kind), dict) else {}
    if kind == "bounce":
        temporary = str(section.get("bounceType", "")).lower() == "transient"
        for item in (section.get("bouncedRecipients") or [])[:MAX_RECIPIENTS]:
            if not isinstance(item, dict) or not _clean_address(str(item.get("emailAddress", ""))):
                continue
            diagnostic = _strip_type(str(item.get("diagnosticCode", "")))[:MAX_DIAGNOSTIC]
            result = RecipientResult(
                recipient=_clean_address(str(item["emailAddress"])), action="delayed" if temporary else "failed",
                status=_status_of(str(item.get("status", ""))) or _status_of(diagnostic),
                reply_code=_reply_code(diagnostic), diagnostic=diagnostic or str(section.get("bounceSubType", "")))
            _classify(result, result.diagnostic)
            _add(report, result)
        report.kind = DSN
    elif kind == "complaint":
        feedback_type = str(section.get("complaintFeedbackType", "") or "abuse").lower()
        for item in (section.get("complainedRecipients") or [])[:MAX_RECIPIENTS]:
            if isinstance(item, dict) and _clean_address(str(item.get("emailAddress", ""))):
                _add(report, RecipientResult(recipient=_clean_address(str(item["emailAddress"])), action="complained",
                                             bounce_class=FEEDBACK_REPORT, disposition="complaint", feedback_type=feedback_type))
        report.kind = ARF
    elif kind == "delivery":
        for address in (section.get("recipients") or [])[:MAX_RECIPIENTS]:
            if _clean_address(str(address)):
                _add(report, RecipientResult(recipient=_clean_address(str(address)), action="delivered",
                                             bounce_class=DELIVERED, disposition="delivered", status="2.0.0"))
        report.kind = DSN
    return bool(report.recipients)


# --- auto-replies --------------------------------------------------------------------------
_AUTOREPLY_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic)?[ -]?(?:reply|response|antwort)|auto:|out of (?:the )?office|ooo\b|vacation|"
    r"abwesenheit|r[ée]ponse automatique|respuesta autom[áa]tica|risposta automatica|away from|on vacation|"
    r"i am (?:currently )?(?:out|away)|autoreply)", re.IGNORECASE)


def _is_autoreply(msg: Message) -> bool:
    auto_submitted = _header(msg, "Auto-Submitted").strip().lower()
    if auto_submitted.startswith("auto-replied"):
        return True
    if any(_header(msg, name) for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder")):
        return True
    if _header(msg, "Precedence").strip().lower() == "auto_reply" or _header(msg, "X-Precedence").strip().lower() == "auto_reply":
        return True
    return bool(_AUTOREPLY_SUBJECT.search(_header(msg, "Subject")))


# --- free-text bounces -----------------------------------------------------------------------
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (?:status|failure|failed|notification|problem|has failed)|returned mail|returned to sender|"
    r"mail delivery|failure notice|failed delivery|delivery failure|could not be delivered|non.?delivery|"
    r"mail system error|error sending|returning message|nondeliverable|not delivered|permanent|bounce|"
    r"delayed mail|warning: message|loop alert|mail could not|message delivery|rejected|notification", re.IGNORECASE)
_BOUNCE_SENDER = re.compile(r"mailer-daemon|mailer_daemon|postmaster|mail delivery (?:sub)?system|maildaemon|"
                            r"microsoftexchange|mail-daemon|^<>$", re.IGNORECASE)
_BOUNCE_BODY = re.compile(
    r"could not be delivered|couldn't be delivered|unable to deliver|not able to deliver|delivery (?:to the following|has failed|failed)|"
    r"permanent (?:error|failure)|following address(?:es)? failed|returned to (?:the )?sender|undeliverable|"
    r"did not reach|failed permanently|error (?:occurred )?(?:while )?delivering|was not delivered|wasn't able to deliver|"
    r"delivery to the following recipient|has not (?:yet )?been delivered|delivery attempts will continue|"
    r"failed to deliver|mail delivery failed|rejected your message|message was rejected|could not deliver", re.IGNORECASE)
_DELAY_HINT = re.compile(
    r"has not (?:yet )?been delivered|delivery attempts will continue|will (?:continue to )?(?:retry|try)|still being retried|"
    r"delivery status notification \(delay\)|\bdelayed\b|warning: message|temporarily deferred|status: delay|"
    r"not yet been able|will be retried", re.IGNORECASE)
_FINAL_HINT = re.compile(r"giving up|given up|gave up|permanent(?:ly)?|could not be delivered|failed permanently|"
                         r"undeliverable|returning message|could not deliver|has been returned|unable to deliver", re.IGNORECASE)

_BOILERPLATE = re.compile(
    r"^(?:this (?:message|is)|a message that you sent|the following|i'?m afraid|sorry,? (?:we|i)\b|sorry it didn't|hi\.|hello|"
    r"delivery (?:has failed|to the following)|your message|please|if you|for further|the mail system|"
    r"this is a permanent error|no action is required|-{4,}\s*$|={4,}\s*$|\*{4,}\s*$|#{4,})", re.IGNORECASE)


def _is_bounce(msg: Message, notification: str, has_returned_copy: bool) -> bool:
    """A mailer daemon's message; or a bounce-like subject or wording backed by a second signal
    (an SMTP status in the text, a returned copy), so that a customer's reply is not read as one."""
    sender = _header(msg, "From")
    sender_local = (_first_address(sender) or sender).split("@")[0].strip("<> \"")
    if sender and (_BOUNCE_SENDER.search(sender) or _DAEMON_LOCAL.match(sender_local)):
        return True
    head = notification[:8000]
    evidence = has_returned_copy or bool(ENHANCED_STATUS_RE.search(head) or _SMTP_REPLY_LINE.search(head))
    return evidence and bool(_BOUNCE_SUBJECT.search(_header(msg, "Subject")) or _BOUNCE_BODY.search(head))


_SMTP_REPLY_LINE = re.compile(r"(?:^|[\s:(])[45][0-5]\d[ -](?:[45]\.\d{1,3}\.\d{1,3}|[A-Za-z])", re.MULTILINE)


def _excluded(report: Report, msg: Message) -> set[str]:
    own = set()
    for name in ("From", "To", "Reply-To", "Sender", "Return-Path", "Delivered-To", "X-Original-To", "Errors-To"):
        own.update(a.lower() for a in _addresses(_header(msg, name)))
    if report.original_from:
        own.add(report.original_from.lower())
    return own


# Lines whose addresses are not failed recipients: greetings, "contact us at", quoted message ids.
_CONTACT_LINE = re.compile(r"^\s*(?:hello|hi|dear)\b|contact|assistance|questions|help ?desk|support@|postmaster@"
                           r"|^\s*(?:message-id|in-reply-to|references):", re.IGNORECASE)


def _parse_free_text(report: Report, msg: Message, notification: str, original_to: list[str]) -> None:
    excluded = _excluded(report, msg)
    # X-Original-To of a bounce is normally our own return path; a few MTAs put the failed recipient there.
    wanted = {a.lower() for a in _addresses(_header(msg, "X-Original-To") + " " + _header(msg, "X-Failed-Recipients"))}
    wanted -= {a.lower() for a in _addresses(_header(msg, "To") + " " + _header(msg, "Delivered-To"))}
    wanted.update(a.lower() for a in original_to)
    text = notification.replace("\r", "")
    candidates = []
    for line in text.splitlines()[:2000]:
        for address in _addresses(line):
            lower = address.lower()
            if _DAEMON_LOCAL.match(lower.split("@")[0]) or lower in (c.lower() for c in candidates):
                continue
            if lower not in wanted and (lower in excluded or lower == report.original_message_id.lower() or _CONTACT_LINE.search(line)):
                continue
            candidates.append(address)
    failed = _addresses(_header(msg, "X-Failed-Recipients"))
    if failed:
        # Exim and Gmail name the failed recipients in a header: authoritative.
        candidates = failed
    if not candidates:
        candidates = [a for a in original_to if a.lower() not in excluded]
    if not candidates:
        return
    head = _header(msg, "Subject") + "\n" + text[:6000]
    delayed = bool(_DELAY_HINT.search(head)) and not _FINAL_HINT.search(head)
    report.kind = DSN
    for address in candidates[:MAX_RECIPIENTS]:
        diagnostic = _diagnostic_block(text, address, candidates)
        result = RecipientResult(recipient=address, action="delayed" if delayed else "failed", status=_status_of(diagnostic),
                                 reply_code=_reply_code(diagnostic), diagnostic=diagnostic)
        _classify(result, diagnostic, transcript=_recipient_text(text, address, candidates, keep_boilerplate=True))
        _add(report, result)


def _diagnostic_block(text: str, address: str, all_addresses: list[str]) -> str:
    """One recipient's part of the notification, whitespace collapsed (see _recipient_text)."""
    return re.sub(r"\s+", " ", _recipient_text(text, address, all_addresses)).strip()[:MAX_DIAGNOSTIC]


def _recipient_text(text: str, address: str, all_addresses: list[str], *, keep_boilerplate: bool = False) -> str:
    """The text that belongs to one recipient: from the line that names it to the next recipient's line.

    Boilerplate lines are dropped; when nothing but the address is left (formats that put the
    reason before the list), the whole notification without boilerplate is used.
    """
    if not text:
        return ""
    clean = (lambda t: t) if keep_boilerplate else _without_boilerplate
    lowered = text.lower()
    start = lowered.find(address.lower())
    if start < 0:
        return clean(text[:6000])
    line_start = lowered.rfind("\n", 0, start) + 1
    line_end = lowered.find("\n", start)
    line_end = len(text) if line_end < 0 else line_end
    end = len(text)
    for other in all_addresses:
        if other.lower() == address.lower():
            continue
        pos = lowered.find(other.lower(), line_end)
        if 0 <= pos < end:
            end = lowered.rfind("\n", 0, pos) + 1 or pos
    block = clean(text[line_start:min(max(end, line_end), line_start + 3000)])
    if not _meaningful(block, address):
        block = clean(text[:6000])
    return block


def _meaningful(block: str, address: str) -> bool:
    rest = block.replace(address, " ")
    rest = re.sub(r"<[^>]{0,300}>|mailto:\S*|[\s:<>()\[\]]", "", rest)
    return len(rest) >= 12


def _without_boilerplate(text: str) -> str:
    keep = [line.strip() for line in text.splitlines()[:300] if line.strip() and not _BOILERPLATE.match(line.strip())]
    return "\n".join(keep)[:3000]


_INLINE_DSN = re.compile(r"^(?:Reporting-MTA|Original-Envelope-Id|Final-Recipient|Original-Recipient):", re.MULTILINE | re.IGNORECASE)


def _unquote(text: str) -> str:
    """A bounce forwarded inline ("> " on most lines) reads like the original."""
    lines = text.splitlines()[:3000]
    quoted = sum(1 for line in lines if line.startswith(">"))
    if len(lines) >= 5 and quoted * 2 > len(lines):
        return "\n".join(re.sub(r"^> ?", "", line) for line in lines)
    return text


# --- entry point -----------------------------------------------------------------------------
def parse_report(raw: bytes) -> Report:
    """Parse one inbound report. Never raises: anything unparseable is kind "not_bounce"."""
    try:
        return _parse(raw if isinstance(raw, bytes) else bytes(raw))
    except Exception:  # a report we cannot read is not a bounce; the caller logs and drops it
        return Report()


def _parse(raw: bytes) -> Report:
    raw = raw[:MAX_BYTES].replace(b"\r\n", b"\n")
    msg = email.message_from_bytes(raw, policy=compat32)
    report = Report(subject=_header(msg, "Subject")[:500], reporter=_header(msg, "From")[:500])
    for name in ("To", "Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To"):
        for address in _addresses(_header(msg, name)):
            if address.lower() not in (a.lower() for a in report.envelope_to):
                report.envelope_to.append(address)

    parts = _walk(msg)
    human = "\n".join(parts.texts)[:MAX_TEXT]
    if parts.returned is not None:
        _original_from_headers(report, parts.returned)
    if parts.returned_headers_text:
        headers = _headers_in(parts.returned_headers_text)
        if headers is not None:
            _original_from_headers(report, headers)
    human = _unquote(human)
    notification, copy = _split_embedded(human)
    if copy:
        headers = _headers_in(copy)
        if headers is not None:
            _original_from_headers(report, headers)

    if parts.feedback or msg.get_param("report-type", header="content-type") == "feedback-report":
        _parse_arf(report, parts)
        return report
    complaint_type = _is_non_standard_complaint(msg, parts)
    if complaint_type:
        recipient = (_addresses(_header(parts.returned, "X-HmXmrOriginalRecipient")) if parts.returned is not None else []) \
            or _addresses(_header(msg, "From"))
        report.kind = ARF
        for address in recipient[:1]:
            _add(report, RecipientResult(recipient=address, action="complained", bounce_class=FEEDBACK_REPORT,
                                         disposition="complaint", feedback_type=complaint_type))
        return report

    if not parts.delivery_status:
        # A DSN whose MIME structure is lost (no Content-Type, broken boundary): fields in the text.
        fields_at = _INLINE_DSN.search(human)
        if fields_at and re.search(r"^(?:Final|Original)-Recipient:", human[fields_at.start():], re.MULTILINE | re.IGNORECASE):
            parts.delivery_status.append(human[fields_at.start():fields_at.start() + 20000])
            notification = human[:fields_at.start()]
    if parts.delivery_status:
        _parse_dsn(report, parts, notification or human)
        if report.recipients:
            report.kind = DSN
            return report

    if not parts.delivery_status and _parse_ses_json(report, human):
        return report

    if _is_bounce(msg, notification, bool(copy) or parts.returned is not None or bool(parts.returned_headers_text)):
        _parse_free_text(report, msg, notification, report.original_to)
        if report.recipients:
            return report

    if _is_autoreply(msg):
        report.kind = AUTOREPLY
        for address in _addresses(_header(msg, "From"))[:1]:
            _add(report, RecipientResult(recipient=address, action="autoreplied", bounce_class=AUTO_REPLY,
                                         disposition="autoreply"))
        return report
    report.kind = NOT_BOUNCE
    report.recipients = []
    return report
