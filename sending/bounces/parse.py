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
import quopri
import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message
from email.policy import compat32

from .classify import (
    AUTHENTICATION_FAILED, BAD_DOMAIN, INVALID_RECIPIENT, MESSAGE_EXPIRED, UNCATEGORIZED, Classification,
    classify_reply, parse_enhanced,
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
ADDR_RE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?){1,8}")
MSGID_RE = re.compile(r"<?([^<>\s]{1,250}@[^<>\s]{1,250}?)>?(?:\s|$)")
REPLY_CODE_RE = re.compile(r"(?<![\d.])([245][0-5]\d)(?:[ -]|$)")
_NOREPLY_LOCAL = re.compile(r"^(?:mailer-daemon|mailer_daemon|maildaemon|mail-daemon|postmaster-daemon|"
                            r"bounces?|noreply|no-reply|double-bounce|root)$", re.IGNORECASE)


def _header(msg: Message, name: str) -> str:
    value = msg.get(name)
    if value is None:
        return ""
    try:
        return str(make_header(decode_header(str(value))))[:2000]
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
    address = address.strip().strip(".'\"`<>()[]:;,")
    if "@" not in address:
        return ""
    local, _, domain = address.rpartition("@")
    local = local.lstrip(".'\"`<(")
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


def _fields(block: str) -> dict[str, str]:
    """RFC 822-style fields (continuation lines unfolded), first occurrence wins."""
    out: dict[str, str] = {}
    name = None
    for line in block.splitlines():
        if line[:1] in (" ", "\t") and name:
            out[name] = (out[name] + " " + line.strip())[:MAX_DIAGNOSTIC * 2]
            continue
        key, sep, value = line.partition(":")
        if sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,60}", key.strip()):
            name = key.strip().lower()
            if name in out:
                name = name + "#dup"
            out.setdefault(name, value.strip())
        else:
            name = None
    return out


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
_RETURNED_TYPES = {"message/rfc822", "message/global", "message/partial"}
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
            payload = part.get_payload()
            if isinstance(payload, list):
                stack[0:0] = [p for p in payload if isinstance(p, Message)]
        elif ctype == "text/plain" or (ctype.startswith("text/") and ctype != "text/html") or part.get_content_maintype() not in ("text", "image", "application", "audio", "video", "message", "multipart"):
            parts.texts.append(_decode_payload(part))
        elif ctype == "text/html":
            parts.texts.append("\x00HTML" + _strip_html(_decode_payload(part)))
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
    r"^(?:[ \t>]{0,4})(?:-{2,}|\*{2,}|={2,}|_{2,})?[ \t]*(?:"
    r"original message|this is a copy of (?:the|your) message|below this line is a copy|returned message|"
    r"undelivered message|original message (?:headers|follows)|message headers follow|headers of the original|"
    r"original headers|the original message|copy of the original|your message|"
    r"unsent message below|returned mail|message text follows|text of (?:the )?original|"
    r"included is the original|a copy of the original|start of returned|original mail"
    r")", re.IGNORECASE | re.MULTILINE)


def _split_embedded(text: str) -> tuple[str, str]:
    """(notification, returned copy) of a free-text bounce that quotes the original inline."""
    match = _EMBEDDED_START.search(text)
    if match and match.start() > 0:
        return text[:match.start()], text[match.start():]
    # No separator line: the returned copy starts at the first header-looking run of lines.
    header_run = re.search(r"^(?:Return-Path|Received|Message-Id|From|Date|Subject|To|DKIM-Signature|X-[A-Za-z-]{1,40}): [^\n]{0,998}\n"
                           r"(?:[ \t][^\n]{0,998}\n){0,20}"
                           r"(?:[A-Za-z-]{1,40}: [^\n]{0,998}\n)", text, re.MULTILINE | re.IGNORECASE)
    if header_run:
        return text[:header_run.start()], text[header_run.start():]
    return text, ""


def _headers_in(copy: str) -> Message | None:
    start = re.search(r"^(?:Return-Path|Received|Message-Id|From|Date|Subject|To|DKIM-Signature|X-[A-Za-z-]{1,40}):", copy, re.MULTILINE | re.IGNORECASE)
    if not start:
        return None
    block = copy[start.start():start.start() + 32 * 1024]
    block = "\n".join(line.strip() if not line[:1] in (" ", "\t") else line for line in block.splitlines())
    try:
        return email.message_from_string(block, policy=compat32)
    except Exception:
        return None


# --- DSN -------------------------------------------------------------------------------------
def _dsn_recipients(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    blocks = re.split(r"\n[ \t]*\n", text.replace("\r", ""))
    per_message: dict[str, str] = {}
    per_recipient: list[dict[str, str]] = []
    for block in blocks:
        if not block.strip():
            continue
        # Some MTAs forget the blank line between recipients: split on each new Final-Recipient.
        chunks = re.split(r"\n(?=(?:Original|Final)-Recipient:)", block, flags=re.IGNORECASE)
        pending: dict[str, str] | None = None
        for chunk in chunks:
            fields = _fields(chunk)
            if "final-recipient" in fields or "original-recipient" in fields or "x-actual-recipient" in fields:
                if pending and "final-recipient" not in pending and "final-recipient" in fields and "original-recipient" in pending:
                    pending.update({k: v for k, v in fields.items() if k not in pending})
                    continue
                pending = fields
                per_recipient.append(fields)
            elif "action" in fields and per_recipient:
                per_recipient[-1].update({k: v for k, v in fields.items() if k not in per_recipient[-1]})
            else:
                for key, value in fields.items():
                    per_message.setdefault(key, value)
    return per_message, per_recipient


def _status_of(value: str) -> str:
    found = parse_enhanced(value)
    return ".".join(str(n) for n in found) if found else ""


def _best_status(dsn_status: str, diagnostic: str) -> str:
    """The DSN Status, unless it is a vague x.0.0 and the diagnostic carries a specific code."""
    in_text = _status_of(diagnostic)
    if in_text and (not dsn_status or (dsn_status.endswith(".0.0") and in_text[0] == dsn_status[0])):
        return in_text
    return dsn_status or in_text


def _reply_code(diagnostic: str) -> int | None:
    match = REPLY_CODE_RE.search(diagnostic[:300])
    return int(match.group(1)) if match else None


def _classify(result: RecipientResult, context: str = "") -> None:
    action = result.action
    if action in ("delivered", "relayed", "expanded"):
        result.bounce_class, result.disposition = DELIVERED, "delivered"
        return
    permanent = None
    if action == "delayed":
        permanent = False
    elif result.status:
        permanent = result.status.startswith("5") or (result.status.startswith("4") and _gave_up(context + " " + result.diagnostic))
    elif result.reply_code:
        permanent = result.reply_code >= 500 or _gave_up(context + " " + result.diagnostic)
    else:
        permanent = True
    text = result.diagnostic or context
    verdict: Classification = classify_reply(result.reply_code, result.status or None, text, permanent=permanent)
    if verdict.bounce_class == UNCATEGORIZED and context and context is not text:
        verdict = classify_reply(result.reply_code, result.status or None, context, permanent=permanent)
    if result.status.startswith("4") and action != "delayed" and _gave_up(context) and verdict.bounce_class in (UNCATEGORIZED,):
        verdict = Classification(MESSAGE_EXPIRED, "soft")
    result.bounce_class, result.disposition = verdict.bounce_class, verdict.disposition


_GAVE_UP_RE = re.compile(r"giving up|gave up|given up|retry time(?:out)? (?:was )?exceeded|too long|expired|permanent", re.IGNORECASE)


def _gave_up(text: str) -> bool:
    return bool(_GAVE_UP_RE.search(text[:4000]))


def _parse_dsn(report: Report, parts: _Parts, human: str) -> None:
    for text in parts.delivery_status:
        per_message, per_recipient = _dsn_recipients(text)
        for fields in per_recipient[:MAX_RECIPIENTS]:
            recipient = _clean_address(_first_address(_strip_type(fields.get("final-recipient", "")))
                                       or _first_address(_strip_type(fields.get("original-recipient", "")))
                                       or _first_address(fields.get("x-actual-recipient", "")))
            if not recipient:
                continue
            diagnostic = _strip_type(fields.get("diagnostic-code", ""))[:MAX_DIAGNOSTIC]
            action = (fields.get("action", "").split() or ["failed"])[0].lower().strip(";")
            if action not in ("failed", "delayed", "delivered", "relayed", "expanded"):
                action = "failed"
            status = _status_of(fields.get("status", ""))
            if not diagnostic:
                diagnostic = _diagnostic_near(human, recipient)
            result = RecipientResult(
                recipient=recipient, action=action, status=_best_status(status, diagnostic),
                reply_code=_reply_code(diagnostic), diagnostic=diagnostic,
                remote_mta=_strip_type(fields.get("remote-mta", "")),
            )
            _classify(result, human)
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


def _diagnostic_near(text: str, recipient: str) -> str:
    """The lines around the first mention of `recipient` in the human-readable part."""
    index = text.lower().find(recipient.lower())
    if index < 0:
        return ""
    tail = text[index:index + 1500]
    lines = [line.strip() for line in tail.splitlines()]
    picked = []
    for line in lines[:12]:
        if not line and picked and len(" ".join(picked)) > len(recipient) + 10:
            break
        if line:
            picked.append(line)
    return " ".join(picked)[:MAX_DIAGNOSTIC]


# --- ARF -------------------------------------------------------------------------------------
def _parse_arf(report: Report, parts: _Parts, msg: Message) -> None:
    fields: dict[str, str] = {}
    for text in parts.feedback:
        for key, value in _fields(text).items():
            fields.setdefault(key, value)
    feedback_type = (fields.get("feedback-type", "") or "abuse").split()[0].lower()
    candidates = []
    for key in ("original-rcpt-to", "removal-recipient"):
        if fields.get(key):
            candidates.append(_first_address(fields[key]))
    if parts.returned is not None:
        candidates.append(_first_address(_header(parts.returned, "X-HmXmrOriginalRecipient")))
    candidates.extend(report.original_to)
    recipients = [c for c in (_clean_address(c) for c in candidates if c) if c]
    report.kind = ARF
    for recipient in recipients[:1] or []:
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
                            r"microsoftexchange|mail-daemon|^<>$|^$", re.IGNORECASE)
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
    r"^(?:this (?:message|is)|a message that you sent|the following|i'?m afraid|sorry|hi\.|hello|"
    r"delivery (?:has failed|to the following)|your message|please|if you|for further|the mail system|"
    r"this is a permanent error|no action is required|----|====|\*\*\*\*)", re.IGNORECASE)


def _is_bounce(msg: Message, notification: str) -> bool:
    sender = _header(msg, "From")
    sender_local = (_first_address(sender) or sender).split("@")[0].strip("<> \"")
    if _BOUNCE_SENDER.search(sender) or _NOREPLY_LOCAL.match(sender_local or ""):
        return True
    if _BOUNCE_SUBJECT.search(_header(msg, "Subject")):
        return True
    return bool(_BOUNCE_BODY.search(notification[:8000]))


def _excluded(report: Report, msg: Message) -> set[str]:
    own = set()
    for name in ("From", "To", "Reply-To", "Sender", "Return-Path", "Delivered-To", "X-Original-To", "Errors-To"):
        own.update(a.lower() for a in _addresses(_header(msg, name)))
    if report.original_from:
        own.add(report.original_from.lower())
    return own


def _parse_free_text(report: Report, msg: Message, notification: str, original_to: list[str]) -> None:
    excluded = _excluded(report, msg)
    x_original = [a for a in _addresses(_header(msg, "X-Original-To") + " " + _header(msg, "X-Failed-Recipients"))]
    text = notification.replace("\r", "")
    candidates = []
    for address in _addresses(text):
        lower = address.lower()
        local = lower.split("@")[0]
        if _NOREPLY_LOCAL.match(local):
            continue
        if lower in excluded and lower not in (a.lower() for a in x_original) and lower not in (a.lower() for a in original_to):
            continue
        candidates.append(address)
    if not candidates:
        candidates = [a for a in _addresses(_header(msg, "X-Failed-Recipients"))]
    if not candidates:
        candidates = [a for a in original_to if a.lower() not in excluded] or list(original_to)
    if not candidates:
        return
    delayed = bool(_DELAY_HINT.search(_header(msg, "Subject") + "\n" + text[:6000])) and not _FINAL_HINT.search(
        _header(msg, "Subject") + "\n" + text[:6000])
    report.kind = DSN
    positions = []
    lowered = text.lower()
    for address in candidates:
        positions.append(lowered.find(address.lower()))
    for index, address in enumerate(candidates[:MAX_RECIPIENTS]):
        diagnostic = _diagnostic_block(text, address, candidates)
        status = _status_of(diagnostic)
        result = RecipientResult(recipient=address, action="delayed" if delayed else "failed", status=status,
                                 reply_code=_reply_code(diagnostic), diagnostic=diagnostic[:MAX_DIAGNOSTIC])
        _classify(result, _without_boilerplate(text))
        _add(report, result)


def _diagnostic_block(text: str, address: str, all_addresses: list[str]) -> str:
    """The text that belongs to one recipient: from its mention to the next recipient's mention."""
    lowered = text.lower()
    start = lowered.find(address.lower())
    if start < 0:
        return ""
    line_start = lowered.rfind("\n", 0, start) + 1
    end = len(text)
    for other in all_addresses:
        if other.lower() == address.lower():
            continue
        pos = lowered.find(other.lower(), start + len(address))
        if 0 <= pos < end:
            end = lowered.rfind("\n", 0, pos) + 1 or pos
    block = text[line_start:min(end, line_start + 2000)]
    block = re.sub(r"\n[ \t]*\n[\s\S]*$", "", block.strip()) if _meaningful(block.split("\n\n")[0], address) else block
    if not _meaningful(block, address):
        block = _without_boilerplate(text)
    return re.sub(r"\s+", " ", block).strip()[:MAX_DIAGNOSTIC]


def _meaningful(block: str, address: str) -> bool:
    rest = block.replace(address, " ")
    rest = re.sub(r"<[^>]{0,300}>|mailto:\S*|[\s:<>()\[\]]", "", rest)
    return len(rest) >= 12


def _without_boilerplate(text: str) -> str:
    keep = [line.strip() for line in text.splitlines()[:200] if line.strip() and not _BOILERPLATE.match(line.strip())]
    return " ".join(keep)[:3000]


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
    notification, copy = _split_embedded(human)
    if copy:
        headers = _headers_in(copy)
        if headers is not None:
            _original_from_headers(report, headers)

    if parts.feedback or msg.get_param("report-type", header="content-type") == "feedback-report":
        _parse_arf(report, parts, msg)
        if report.recipients:
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

    if parts.delivery_status:
        _parse_dsn(report, parts, notification or human)
        if report.recipients:
            report.kind = DSN
            return report

    if _is_bounce(msg, notification):
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
