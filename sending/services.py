"""The one submission path (HTTP `submit`, `submit_many`; SMTP `submit_raw`) and the other
state changes of messages: status aggregation, body erasure.

Every interface goes through `check_submission` (tenant active, sender domain, recipients,
size, suppressions) and `_store` (quota, rows, events, enqueue), so the rules cannot drift
apart between HTTP and SMTP.
"""
import hashlib
import json
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from email import errors as email_errors
from email.headerregistry import Address, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import format_datetime
from email import policy as email_policy

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Count, Max
from django.utils import timezone

from dispatch_site import crypto, hot_reads
from dispatch_site.bulk_insert import insert_many, one_statement
from dispatch_site.errors import (
    Conflict,
    DispatchError,
    DomainNotVerified,
    MessageTooLarge,
    RecipientSuppressed,
    TemporaryFailure,
    TenantNotActive,
    TooManyRecipients,
    ValidationFailed,
)

from . import events, mime
from .addresses import InvalidAddress, check_display_name, domain_of, normalize_address, parse_mailbox, simple_address_list
from .dkim import normalize_line_endings
from .models import IdempotencyKey, Message, Recipient
from .suppressions import suppressed_among

logger = logging.getLogger(__name__)

DELIVERY_TASK = "sending.delivery.tasks.deliver_recipients"
DELIVERY_TASK_CHUNK = 500
IDEMPOTENCY_TTL = timedelta(hours=24)
# The one-statement store passes each table's rows as one jsonb value, bodies hex-encoded (twice
# their size), and PostgreSQL refuses a jsonb value over 256 MB: larger batches (big messages
# of one tenant arriving together over SMTP) are stored by the transactional path (COPY).
ONE_STATEMENT_MAX_BODY_BYTES = 64 * 1024 * 1024
(_IDEMPOTENCY_UNIQUE,) = (c.name for c in IdempotencyKey._meta.constraints)
MAX_REPLY_TO = 10
MAX_TAGS = 10
MAX_TAG_LENGTH = 100
MAX_METADATA_KEYS = 50
MAX_METADATA_BYTES = 4096
_TAG_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,100}$")


# --- inputs and results ---------------------------------------------------------------------
@dataclass
class SendRequest:
    """One message as the HTTP API describes it (see docs/sending.md). Attachment contents
    are already base64-decoded."""

    from_: str
    to: list = field(default_factory=list)
    subject: str | None = None
    html_body: str | None = None
    text_body: str | None = None
    template_id: str | None = None
    template_variables: dict | None = None
    use_master_template: bool = False
    attachments: list = field(default_factory=list)  # [mime.Attachment]
    cc: list = field(default_factory=list)
    bcc: list = field(default_factory=list)
    reply_to: list = field(default_factory=list)
    headers: dict = field(default_factory=dict)
    tags: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)


@dataclass
class SubmitResult:
    """`response` is the API response body ({"data": ..., "message": ...}); `message` and
    `recipients` are None when an idempotent request was replayed."""

    response: dict
    message: Message | None = None
    recipients: list | None = None
    replayed: bool = False

    @property
    def queued(self):
        return sum(1 for r in self.response["data"]["recipients"] if r["status"] == Recipient.Status.QUEUED)

    @property
    def suppressed(self):
        return [r["email"] for r in self.response["data"]["recipients"] if r["status"] == Recipient.Status.SUPPRESSED]


@dataclass
class Envelope:
    email: str
    kind: str


@dataclass
class Prepared:
    """A message that passed the checks and is ready to store."""

    source: str
    message_id: str
    sender: Address
    subject: str
    to: list
    cc: list
    recipients: list  # [Envelope], de-duplicated
    raw: bytes
    has_attachments: bool
    tags: list
    metadata: dict
    template_ref: str = ""
    header_message_id: str = ""
    domain: object = None
    accepted: list = field(default_factory=list)
    suppressed: list = field(default_factory=list)


class IdempotencyKeyReused(Conflict):
    code = "IDEMPOTENCY_KEY_REUSED"
    default_message = "This Idempotency-Key was used with a different request body."


# --- the checks (one place for every interface) ------------------------------------------
class Lookups:
    """Caches the two lookups the checks make, so send-bulk resolves each sender domain once
    and looks up the suppressions of all its recipients in one query. The SMTP gateway vouches
    for what its session answered moments before (MAIL FROM's domain, each RCPT's suppression),
    which is then not asked again."""

    def __init__(self, tenant):
        self.tenant = tenant
        self._domains = {}
        self._suppressed = None
        self._unsuppressed = set()
        # The tenant's enabled webhook endpoints when prefetch read them with the domain; None:
        # not read, the events' recording reads them itself.
        self.endpoints = None

    def domain_for(self, address):
        from domains.selectors import sending_domain_for

        key = domain_of(address)
        if key not in self._domains:
            self._domains[key] = sending_domain_for(tenant=self.tenant, address=address)
        return self._domains[key]

    def prefetch(self, address, emails):
        """A single message's lookups — the domain of `address`, the suppressions among `emails`
        and the tenant's endpoints — in one query (two round trips less per /send), unless
        already known."""
        from domains.selectors import sending_domain_name, usable_sending_domain

        key = domain_of(address)
        name = sending_domain_name(address)
        if name is None or key in self._domains or self._suppressed is not None:
            return
        domain, self._suppressed, self.endpoints = hot_reads.send_lookups(self.tenant, name, emails)
        self._domains[key] = usable_sending_domain(domain)

    def vouch_domain(self, domain):
        """`domain` was found usable moments ago (another tenant's never counts)."""
        if domain.tenant_id == self.tenant.pk:
            self._domains.setdefault(domain.name, domain)

    def vouch_unsuppressed(self, emails):
        """These addresses were found not suppressed moments ago."""
        self._unsuppressed.update(e.lower() for e in emails)

    def preload_suppressions(self, emails):
        self._suppressed = suppressed_among(tenant=self.tenant, emails=emails)

    def suppressed(self, emails):
        unknown = [e for e in emails if e.lower() not in self._unsuppressed]
        if not unknown:
            return set()
        found = self._suppressed if self._suppressed is not None else suppressed_among(tenant=self.tenant, emails=unknown)
        return {e for e in unknown if e.lower() in found}


def check_tenant_active(tenant):
    if not tenant.is_active:
        raise TenantNotActive(f"Tenant is {tenant.status}.")


def check_recipient_count(count):
    if count == 0:
        raise ValidationFailed("At least one recipient is required.", details={"to": ["at least one recipient is required"]})
    if count > settings.DISPATCH_MAX_RECIPIENTS:
        raise TooManyRecipients(
            f"At most {settings.DISPATCH_MAX_RECIPIENTS} recipients per message (to + cc + bcc); got {count}."
        )


def check_submission(*, tenant, prepared: Prepared, lookups: Lookups, envelope_from=None, sender_header=None):
    """Every rule a submission must pass, in one place. Fills prepared.domain, .accepted and
    .suppressed. Address syntax is checked where addresses are parsed, by
    sending.addresses.normalize_address (the one syntax rule). SMTP submissions also name the
    envelope MAIL FROM and, when the message has one, the header Sender: both must be on verified
    domains of the tenant, as From is."""
    check_tenant_active(tenant)
    check_recipient_count(len(prepared.recipients))
    domain = lookups.domain_for(prepared.sender.addr_spec)
    if domain is None:
        raise DomainNotVerified(
            f"{prepared.sender.domain} is not a verified sending domain of this tenant.",
            details={"from": ["not on a verified domain of this tenant"]},
        )
    for what, key, address in (("MAIL FROM", "mail_from", envelope_from), ("Sender", "sender", sender_header)):
        if address is not None and domain_of(address) != prepared.sender.domain and lookups.domain_for(address) is None:
            raise DomainNotVerified(f"{what} {address} is not on a verified sending domain of this tenant.",
                                    details={key: ["not on a verified domain of this tenant"]})
    if len(prepared.raw) > settings.DISPATCH_MAX_MESSAGE_BYTES:
        raise MessageTooLarge(
            f"The message is {len(prepared.raw)} bytes; the limit is {settings.DISPATCH_MAX_MESSAGE_BYTES} bytes."
        )
    suppressed = lookups.suppressed([r.email for r in prepared.recipients])
    prepared.domain = domain
    prepared.accepted = [r for r in prepared.recipients if r.email not in suppressed]
    prepared.suppressed = [r for r in prepared.recipients if r.email in suppressed]
    if not prepared.accepted:
        raise RecipientSuppressed(
            "All recipients are on the suppression list.", details={"suppressed": [r.email for r in prepared.suppressed]}
        )


def check_quota_and_rate(tenant, recipient_count):
    """Per-minute rate limit (Redis, RateLimited 429 / 451 4.7.1) and monthly quota (exact,
    QuotaExceeded 400 / 552 5.3.4), counted in recipients. Returns what `release_quota_and_rate`
    needs to give them back."""
    from tenants import limits

    return limits.admit(tenant=tenant, count=recipient_count)


def release_quota_and_rate(tenant, recipient_count, state):
    from tenants import limits

    limits.release(tenant=tenant, count=recipient_count, rate_state=state)


# --- HTTP -------------------------------------------------------------------------------------
def _envelope(values, kind, field_name, seen, out):
    """Parse header addresses (returned, for the header) and append the new ones to the
    envelope `out` (an address listed twice anywhere is delivered once)."""
    mailboxes = []
    for value in values:
        mailbox = parse_mailbox(value, field=field_name)
        mailboxes.append(mailbox)
        key = mailbox.addr_spec.lower()
        if key not in seen:
            seen.add(key)
            out.append(Envelope(email=mailbox.addr_spec, kind=kind))
    return mailboxes


def validate_tags(tags):
    if not isinstance(tags, list) or len(tags) > MAX_TAGS:
        raise ValidationFailed(f"tags: a list of at most {MAX_TAGS} strings", details={"tags": [f"at most {MAX_TAGS} strings"]})
    for tag in tags:
        if not isinstance(tag, str) or not _TAG_RE.match(tag):
            raise ValidationFailed(
                f"tags: each tag is 1 to {MAX_TAG_LENGTH} characters without control characters",
                details={"tags": ["invalid tag"]},
            )
    return list(dict.fromkeys(tags))


def validate_metadata(metadata):
    if not isinstance(metadata, dict):
        raise ValidationFailed("metadata: must be an object", details={"metadata": ["must be an object"]})
    if len(metadata) > MAX_METADATA_KEYS:
        raise ValidationFailed(f"metadata: at most {MAX_METADATA_KEYS} keys", details={"metadata": ["too many keys"]})
    for key, value in metadata.items():
        if not isinstance(value, (str, int, float, bool)) and value is not None:
            raise ValidationFailed(
                "metadata: values must be strings, numbers, booleans or null",
                details={"metadata": [f"{key}: nested values are not allowed"]},
            )
    if len(json.dumps(metadata, ensure_ascii=False).encode()) > MAX_METADATA_BYTES:
        raise ValidationFailed(f"metadata: at most {MAX_METADATA_BYTES} bytes as JSON", details={"metadata": ["too large"]})
    return metadata


def prepare_api_message(*, tenant, request: SendRequest, lookups: Lookups) -> Prepared:
    """Validate, render and build one HTTP message, then run the checks."""
    check_tenant_active(tenant)
    sender = parse_mailbox(request.from_, field="from")
    for name in ("to", "cc", "bcc"):
        if not isinstance(getattr(request, name), list):
            raise ValidationFailed(f"{name}: must be a list of addresses", details={name: ["must be a list"]})
    check_recipient_count(len(request.to) + len(request.cc) + len(request.bcc))
    if not request.to:
        raise ValidationFailed("to: at least one recipient is required", details={"to": ["at least one recipient is required"]})
    seen, recipients = set(), []
    to = _envelope(request.to, Recipient.Kind.TO, "to", seen, recipients)
    cc = _envelope(request.cc, Recipient.Kind.CC, "cc", seen, recipients)
    _envelope(request.bcc, Recipient.Kind.BCC, "bcc", seen, recipients)
    if len(request.reply_to) > MAX_REPLY_TO:
        raise ValidationFailed(f"reply_to: at most {MAX_REPLY_TO} addresses", details={"reply_to": ["too many addresses"]})
    reply_to = [parse_mailbox(value, field="reply_to") for value in request.reply_to]
    headers = mime.validate_custom_headers(request.headers)
    tags = validate_tags(request.tags)
    metadata = validate_metadata(request.metadata)
    for index, attachment in enumerate(request.attachments):
        mime.validate_attachment(
            filename=attachment.filename, content_type=attachment.content_type,
            content_id=attachment.content_id, inline=attachment.inline, index=index,
        )
    attached = sum(len(a.content) for a in request.attachments)
    if attached > settings.DISPATCH_MAX_MESSAGE_BYTES:
        raise MessageTooLarge(f"Attachments total {attached} bytes; the limit is {settings.DISPATCH_MAX_MESSAGE_BYTES} bytes.")

    subject, html, text = request.subject, request.html_body, request.text_body
    if subject is not None:
        mime.check_header_text(subject, "subject")  # refused, not folded away by rendering
    if request.template_id is not None or request.use_master_template:
        from templates_app.services import render_for_send

        rendered = render_for_send(
            tenant=tenant, template_ref=request.template_id, subject=subject, html_body=html, text_body=text,
            variables=request.template_variables or {}, use_master_template=request.use_master_template,
        )
        subject, html, text = rendered.subject, rendered.html, rendered.text
    if not subject:
        raise ValidationFailed("subject is required", details={"subject": ["required"]})
    mime.check_header_text(subject, "subject")
    if len(subject) > 998:
        raise ValidationFailed("subject: at most 998 characters", details={"subject": ["at most 998 characters"]})
    if html is None and text is None:
        raise ValidationFailed(
            "html_body, text_body or template_id is required", details={"html_body": ["a body is required"]}
        )

    message_id = mime.new_message_id()
    raw = mime.build_message(
        sender=sender, to=to, cc=cc, reply_to=reply_to, subject=subject, html=html, text=text,
        attachments=request.attachments, headers=headers, message_id=message_id,
    )
    prepared = Prepared(
        source=Message.Source.API, message_id=message_id, sender=sender, subject=subject,
        to=[a.addr_spec for a in to], cc=[a.addr_spec for a in cc], recipients=recipients, raw=raw,
        has_attachments=bool(request.attachments), tags=tags, metadata=metadata,
        template_ref=request.template_id or "",
    )
    lookups.prefetch(sender.addr_spec, [r.email for r in recipients])
    check_submission(tenant=tenant, prepared=prepared, lookups=lookups)
    return prepared


def request_fingerprint(body) -> str:
    """SHA-256 of the request body as canonical JSON (key order and spacing do not matter)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()


def submit(*, tenant, request: SendRequest, credential=None, idempotency_key=None, request_hash=None) -> SubmitResult:
    """Accept one message from the HTTP API. With an Idempotency-Key: the same key and body
    within 24 h return the first response; another body raises IdempotencyKeyReused (409)."""
    if idempotency_key:
        replay = _idempotent_replay(tenant, idempotency_key, request_hash)
        if replay is not None:
            return replay
    lookups = Lookups(tenant)
    prepared = prepare_api_message(tenant=tenant, request=request, lookups=lookups)
    try:
        return _store(tenant=tenant, items=[prepared], credential=credential,
                      idempotency=(idempotency_key, request_hash) if idempotency_key else None,
                      endpoints=lookups.endpoints)[0]
    except _IdempotencyRace:
        # A concurrent request with the same key committed first: answer with its response.
        replay = _idempotent_replay(tenant, idempotency_key, request_hash)
        if replay is None:
            raise Conflict("A request with this Idempotency-Key is in progress; retry.", code="IDEMPOTENCY_IN_PROGRESS") from None
        return replay


def submit_many(*, tenant, requests, credential=None) -> list:
    """Accept up to 100 messages: each goes through the same checks and fails on its own.
    Returns, per input, a SubmitResult or the DispatchError that refused it. Accepted messages
    are stored in one transaction."""
    check_tenant_active(tenant)
    lookups = Lookups(tenant)
    lookups.preload_suppressions(_bulk_addresses(requests))
    outcomes = []
    for request in requests:
        try:
            outcomes.append(prepare_api_message(tenant=tenant, request=request, lookups=lookups))
        except DispatchError as exc:
            outcomes.append(exc)
    return _store_outcomes(tenant=tenant, outcomes=outcomes, credential=credential)


def _store_outcomes(*, tenant, outcomes, credential):
    """Store the Prepared items of `outcomes` in one transaction; errors pass through."""
    prepared = [o for o in outcomes if isinstance(o, Prepared)]
    if not prepared:
        return outcomes
    stored = iter(_store(tenant=tenant, items=prepared, credential=credential))
    return [next(stored) if isinstance(o, Prepared) else o for o in outcomes]


def _bulk_addresses(requests):
    emails = set()
    for request in requests:
        for name in ("to", "cc", "bcc"):
            values = getattr(request, name)
            if isinstance(values, list) and len(values) <= settings.DISPATCH_MAX_RECIPIENTS:
                for value in values:
                    if isinstance(value, str):
                        try:
                            emails.add(parse_mailbox(value).addr_spec)
                        except InvalidAddress:
                            pass
    return emails


# --- SMTP -------------------------------------------------------------------------------------
class _CachedHeaderRegistry(HeaderRegistry):
    """HeaderRegistry builds a new header class (type(...)) on every header access; the classes
    are stateless, so one per header name is the same thing, ~20 % cheaper parsing (perf)."""

    def __init__(self):
        super().__init__()
        self._classes = {}

    def __getitem__(self, name):
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(name)
        return cls


_HEADER_POLICY = email_policy.default.clone(header_factory=_CachedHeaderRegistry())
_RAW_HEADER_PARSER = BytesHeaderParser(policy=email_policy.compat32)


def _parse_header(name, value):
    try:
        return _HEADER_POLICY.header_fetch_parse(name, value)
    except Exception:  # noqa: BLE001 - the standard parser raises IndexError & co. on some broken input
        # Refuse this message alone: left to propagate, the error would fail every message of
        # the gateway's batch, other clients' included.
        raise ValidationFailed(f"The {name} header cannot be parsed.", details={name: ["unparsable"]}) from None


class MessageHead:
    """The header fields of a message, each parsed exactly as `email.policy.default` parses it,
    but only when asked for (perf: parsing every header the default way, Content-Type and Date
    included, was a quarter of the gateway's submission path). The fields are split as the
    compat32 parser splits them (`_split_fields`), whose header splitting is the default
    policy's (`header_source_parse` is the same code); `_HEADER_POLICY.header_fetch_parse` then
    does what reading a header from an EmailMessage does. The same read-only API as
    email.message.Message for what we use, plus `address_lists` and `text`, which skip the
    parser for the common simple values."""

    def __init__(self, raw: bytes):
        self._fields = _split_fields(raw)

    def get_all(self, name, failobj=None):
        name = name.lower()
        found = [_parse_header(n, v) for n, v in self._fields if n.lower() == name]
        return found or failobj

    def get(self, name, failobj=None):
        name = name.lower()
        for field_name, value in self._fields:
            if field_name.lower() == name:
                return _parse_header(field_name, value)
        return failobj

    def __contains__(self, name):
        name = name.lower()
        return any(n.lower() == name for n, _ in self._fields)

    def address_lists(self, name):
        """For each `name` field (an address-list header), its [(display_name, addr_spec)] as
        `get_all(name)[i].addresses` gives them."""
        name, lists = name.lower(), []
        for field_name, value in self._fields:
            if field_name.lower() == name:
                found = simple_address_list(_unfold(value))
                if found is None:
                    found = [(a.display_name, a.addr_spec) for a in _parse_header(field_name, value).addresses]
                lists.append(found)
        return lists

    def is_unambiguous(self, name):
        """False when a `name` field (an address-list header) reads only through the parser's
        error recovery (an invalid-header defect; obsolete syntax and raw UTF-8 are fine):
        `a@x <b@y>` is a@x to the email package and b@y to many receivers."""
        name = name.lower()
        for field_name, value in self._fields:
            if field_name.lower() == name and simple_address_list(_unfold(value)) is None:
                defects = _parse_header(field_name, value).defects
                if any(isinstance(d, email_errors.InvalidHeaderDefect) for d in defects):
                    return False
        return True

    def text(self, name):
        """`str(get(name, ""))`. An unstructured field in ASCII without encoded words reads as
        its unfolded value, so it is not parsed."""
        name = name.lower()
        for field_name, value in self._fields:
            if field_name.lower() == name:
                unfolded = _unfold(value)
                if unfolded.isascii() and "=?" not in unfolded and issubclass(
                    _HEADER_POLICY.header_factory[field_name], UnstructuredHeader
                ):
                    return unfolded
                return str(_parse_header(field_name, value))
        return ""


# A header field name: printable ASCII but the colon, no white space (RFC 5322 ftext).
_FIELD_NAME = r"[\x21-\x39\x3b-\x7e]+"
# One well-formed field (name, colon, value with its continuation lines) of a CRLF header block.
_SIMPLE_FIELD = re.compile(rf"({_FIELD_NAME}):[ \t]*([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)(?:\r\n|\Z)")


def _split_fields(raw):
    """The (name, value) fields as the compat32 parser splits them. A block of well-formed
    fields ending in an empty line is split here (perf: the parser's line-by-line machinery was
    a third of reading a message); anything else (no empty line, a body line straight after the
    fields, a Unix From line, bare CR or LF...) goes to the parser, given only the header block:
    the fields end at or before the first empty line, so the rest cannot change them."""
    end = raw.find(b"\r\n\r\n")
    if end == -1:
        return _RAW_HEADER_PARSER.parsebytes(raw)._headers
    head = raw[:end].decode("ascii", "surrogateescape")
    fields, position = [], 0
    while position < len(head):
        match = _SIMPLE_FIELD.match(head, position)
        if match is None:
            return _RAW_HEADER_PARSER.parsebytes(raw[: end + 4])._headers
        fields.append((match[1], match[2]))
        position = match.end()
    return fields


# A header line: a field name straight followed by its colon, or a continuation line (white space first).
_FIELD_LINE = re.compile(rf"{_FIELD_NAME}:|[ \t]".encode())


def check_header_lines(raw):
    """Every line of the header block must be a field or the continuation of one. Anything else
    (`From : x`, which the email package skips and receivers read as a From; a line without a
    colon, where parsers disagree on where the header ends) is refused: the headers we check
    must be the headers every receiver sees. Raises ValidationFailed (550 5.6.0)."""
    end = raw.find(b"\r\n\r\n")
    head = raw[:end] if end >= 0 else raw.rstrip(b"\r\n")
    if not head:
        return
    for number, line in enumerate(head.split(b"\r\n"), 1):
        if not _FIELD_LINE.match(line) or (number == 1 and line[:1] in (b" ", b"\t")):
            shown = line[:60].decode("ascii", "replace")
            raise ValidationFailed(
                f"Header line {number} is not a header field ({shown!r}): use Name: value, no space before the colon.",
                details={"headers": [f"line {number} is not a header field"]},
            )


def _unfold(value):
    """What policy.default.header_fetch_parse does to a value before parsing it."""
    return value.replace("\r", "").replace("\n", "")


_ATTACHMENT_RE = re.compile(rb"(?im)^content-disposition:[ \t]*attachment")
_STRIPPED_SMTP_HEADERS = (b"bcc", b"return-path")


def submit_raw(*, tenant, mail_from, rcpt_tos, raw: bytes, credential=None) -> SubmitResult:
    """Accept a message from the SMTP gateway, keeping the client's MIME as sent.

    Rules: the header From (exactly one mailbox), a Sender header if any (one mailbox) and the
    envelope MAIL FROM must all be on verified domains of the tenant; recipients are the RCPT TO addresses (those not in To/Cc
    are Bcc); Message-ID and Date are added when missing; Bcc, Return-Path and the
    X-Dispatch-* control headers (Tags, Metadata, Template, Template-Variables) are removed."""
    prepared = prepare_raw_message(tenant=tenant, mail_from=mail_from, rcpt_tos=rcpt_tos, raw=raw, lookups=Lookups(tenant))
    return _store(tenant=tenant, items=[prepared], credential=credential)[0]


def submit_raw_many(*, tenant, items, credential=None) -> list:
    """submit_raw for several SMTP submissions of one tenant at once (the gateway batches those
    that arrive together): each is checked on its own, the accepted ones are stored in ONE
    transaction (one commit for all). `items` are dicts with mail_from, rcpt_tos and raw, and
    optionally what the SMTP session already checked, which is not looked up again (perf: two
    queries per batch): `sender_domain`, the Domain its MAIL FROM check found usable, and
    `recipients_checked`, true when every RCPT TO was found not suppressed (a suppression
    added since is the same race as one added just after the 250). A header From on another
    domain than MAIL FROM is still looked up.
    Returns, per item, a SubmitResult or the DispatchError that refused it."""
    lookups = Lookups(tenant)
    unchecked = []
    for item in items:
        if item.get("sender_domain") is not None:
            lookups.vouch_domain(item["sender_domain"])
        if item.get("recipients_checked"):
            lookups.vouch_unsuppressed(_rcpt_addresses(item))
        else:
            unchecked.append(item)
    if len(unchecked) > 1:
        # One suppression query for the whole batch instead of one per message (perf).
        lookups.preload_suppressions([email for item in unchecked for email in _rcpt_addresses(item)])
    outcomes = []
    for item in items:
        try:
            outcomes.append(prepare_raw_message(tenant=tenant, lookups=lookups, mail_from=item["mail_from"],
                                                rcpt_tos=item["rcpt_tos"], raw=item["raw"]))
        except DispatchError as exc:
            outcomes.append(exc)
        except DatabaseError:
            raise  # the whole batch is answered "try again", as storing it would be
        except Exception:  # noqa: BLE001 - a bug met by one client's message must not fail the batch
            logger.exception("SMTP submission: checking one message failed unexpectedly")
            outcomes.append(TemporaryFailure("The message could not be checked; try again later."))
    return _store_outcomes(tenant=tenant, outcomes=outcomes, credential=credential)


def _rcpt_addresses(item):
    """The item's recipients as the checks see them; an invalid one refuses its item later."""
    emails = []
    for value in item["rcpt_tos"]:
        try:
            emails.append(normalize_address(value, field="rcpt_to"))
        except Exception:  # noqa: BLE001 - that item is refused by prepare_raw_message anyway
            pass
    return emails


def prepare_raw_message(*, tenant, mail_from, rcpt_tos, raw: bytes, lookups: Lookups) -> Prepared:
    check_tenant_active(tenant)
    if b"\x00" in raw:
        raise ValidationFailed("The message contains NUL bytes.")
    raw = normalize_line_endings(raw)
    if len(raw) > settings.DISPATCH_MAX_MESSAGE_BYTES:
        raise MessageTooLarge(f"The message is {len(raw)} bytes; the limit is {settings.DISPATCH_MAX_MESSAGE_BYTES} bytes.")
    check_header_lines(raw)
    if not mail_from:
        raise InvalidAddress("A null reverse-path (MAIL FROM:<>) is not accepted for submission.")
    envelope_from = normalize_address(mail_from, field="mail_from")
    check_recipient_count(len(rcpt_tos))
    headers = MessageHead(raw)
    sender = _single_from(headers)
    to, cc = _header_addresses(headers, "To"), _header_addresses(headers, "Cc")
    in_headers = {a.lower(): kind for kind, group in ((Recipient.Kind.CC, cc), (Recipient.Kind.TO, to)) for a in group}
    seen, recipients = set(), []
    for value in rcpt_tos:
        email_address = normalize_address(value, field="rcpt_to")
        if email_address.lower() not in seen:
            seen.add(email_address.lower())
            recipients.append(Envelope(email=email_address, kind=in_headers.get(email_address.lower(), Recipient.Kind.BCC)))

    tags = _control_json(headers, "X-Dispatch-Tags", list, comma_list=True)
    metadata = _control_json(headers, "X-Dispatch-Metadata", dict)
    template_ref = str(headers.get("X-Dispatch-Template", "") or "").strip()
    subject = _undo_surrogates(headers.text("Subject"))
    if template_ref:
        variables = _control_json(headers, "X-Dispatch-Template-Variables", dict)
        raw, subject = _apply_template(tenant=tenant, raw=raw, template_ref=template_ref, subject=subject, variables=variables)

    raw = mime.strip_headers(raw, names=_STRIPPED_SMTP_HEADERS, prefixes=(mime.CONTROL_HEADER_PREFIX,))
    message_id = mime.new_message_id()
    header_message_id = str(headers.get("Message-ID", "") or "").strip().strip("<>")[:255]
    added = b""
    if not header_message_id:
        added += f"Message-ID: <{message_id}>\r\n".encode()
    if "Date" not in headers:
        added += f"Date: {format_datetime(timezone.now())}\r\n".encode()
    prepared = Prepared(
        source=Message.Source.SMTP, message_id=message_id, sender=sender, subject=subject[:998], to=to, cc=cc,
        recipients=recipients, raw=added + raw, has_attachments=bool(_ATTACHMENT_RE.search(raw)),
        tags=validate_tags(tags or []), metadata=validate_metadata(metadata or {}), template_ref=template_ref[:200],
        header_message_id=header_message_id if header_message_id != message_id else "",
    )
    check_submission(tenant=tenant, prepared=prepared, lookups=lookups, envelope_from=envelope_from,
                     sender_header=_sender_header(headers))
    return prepared


def _single_mailbox(headers, name):
    """(display name, addr_spec) of the one mailbox of the `name` header (From, Sender), or None
    when there is no such header. More than one header or mailbox, or a value the parser reads
    only through its error recovery (`a@x <b@y>`: a@x to us, b@y to many receivers), is refused."""
    values = headers.address_lists(name)
    if not values:
        return None
    field = name.lower()
    if len(values) != 1:
        raise InvalidAddress(f"The message must have exactly one {name} header.", details={field: [f"exactly one {name} header"]})
    if len(values[0]) != 1:
        raise InvalidAddress(f"{name} must name exactly one mailbox.", details={field: ["exactly one mailbox"]})
    if not headers.is_unambiguous(name):
        raise InvalidAddress(f"The {name} header is malformed: write it as Name <address>.", details={field: ["malformed"]})
    return values[0][0]


def _sender_header(headers):
    """The address of the Sender header, if any. Receivers show it next to From ("on behalf of",
    "via"), so check_submission holds it to From's domain rule (as Amazon SES does)."""
    mailbox = _single_mailbox(headers, "Sender")
    return None if mailbox is None else normalize_address(mailbox[1], field="sender")


def _single_from(headers) -> Address:
    mailbox = _single_mailbox(headers, "From")
    if mailbox is None:
        raise InvalidAddress("The message must have exactly one From header.", details={"from": ["exactly one From header"]})
    display_name, addr_spec = mailbox
    addr = normalize_address(addr_spec, field="from")
    local, _, domain = addr.rpartition("@")
    return Address(display_name=check_display_name(_undo_surrogates(display_name or ""), field="from"), username=local, domain=domain)


def _undo_surrogates(text):
    """Raw UTF-8 in a header (an SMTPUTF8 client) reaches us as surrogate escapes: make it text."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _header_addresses(headers, name):
    found = []
    for addresses in headers.address_lists(name):
        for _, addr_spec in addresses:
            try:
                found.append(normalize_address(addr_spec, field=name.lower()))
            except InvalidAddress:
                logger.info("ignoring unparsable %s address in SMTP message", name)
    return found


def _control_json(headers, name, kind, comma_list=False):
    value = headers.get(name)
    if value is None:
        return None
    text = str(value).strip()
    if comma_list and not text.startswith("["):
        return [part.strip() for part in text.split(",") if part.strip()]
    try:
        parsed = json.loads(text)
    except ValueError:
        raise ValidationFailed(f"{name}: not valid JSON") from None
    if not isinstance(parsed, kind):
        raise ValidationFailed(f"{name}: must be a JSON {'array' if kind is list else 'object'}")
    return parsed


def _apply_template(*, tenant, raw, template_ref, subject, variables):
    """Replace the client's body (and Subject) with the rendered template, keeping the
    client's other headers."""
    from templates_app.services import render_for_send

    rendered = render_for_send(tenant=tenant, template_ref=template_ref, subject=subject or None, variables=variables or {})
    new_subject = rendered.subject or subject
    mime.check_header_text(new_subject, "subject")
    body = EmailMessage(policy=mime.MODERN_POLICY)
    body["Subject"] = new_subject
    if rendered.text is not None and rendered.html is not None:
        body.set_content(rendered.text)
        body.add_alternative(rendered.html, subtype="html")
    elif rendered.html is not None:
        body.set_content(rendered.html, subtype="html")
    else:
        body.set_content(rendered.text or "")
    # New: Subject, MIME-Version and Content-*; kept: every other header of the client's.
    new_fields, new_rest = mime.split_head(body.as_bytes(policy=mime.MODERN_POLICY))
    fields, _ = mime.split_head(raw)
    replaced = {mime.field_name(f) for f in new_fields}
    kept = [f for f in fields if mime.field_name(f) not in replaced and not mime.field_name(f).startswith(b"content-")]
    return b"".join(kept + new_fields) + new_rest, new_subject


# --- storing ------------------------------------------------------------------------------------
class _IdempotencyRace(Exception):
    pass


def _idempotent_replay(tenant, key, request_hash):
    row = IdempotencyKey.objects.for_tenant(tenant).filter(key=key).first()
    if row is None:
        return None
    if row.created_at < timezone.now() - IDEMPOTENCY_TTL:
        IdempotencyKey.objects.filter(pk=row.pk, created_at=row.created_at).delete()
        return None
    if row.request_hash != request_hash:
        raise IdempotencyKeyReused()
    return SubmitResult(response=row.response, replayed=True)


def idempotency_keys_prune(*, now=None) -> int:
    """Delete Idempotency-Keys older than 24 h (a periodic task calls this); returns how many."""
    cutoff = (now or timezone.now()) - IDEMPOTENCY_TTL
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted


def _response(message, recipients):
    queued = sum(1 for r in recipients if r.status == Recipient.Status.QUEUED)
    return {
        "data": {
            "id": str(message.id),
            "message_id": message.message_id,
            "recipients": [{"email": r.email, "status": r.status} for r in recipients],
        },
        "message": f"{queued} email(s) queued for delivery",
    }


def _store(*, tenant, items, credential=None, idempotency=None, endpoints=None) -> list:
    """INSERT the messages and their recipients, reserve quota, record events, and enqueue
    delivery once committed. Returns a SubmitResult, or the quota error, per item. `endpoints`:
    the tenant's enabled webhook endpoints if already read (Lookups.endpoints), else None."""
    now = timezone.now()
    expires_at = now + timedelta(days=tenant.plan.log_retention_days)
    rows = []
    for prepared in items:
        message = Message(
            id=uuid.uuid4(), tenant=tenant, message_id=prepared.message_id, header_message_id=prepared.header_message_id,
            source=prepared.source, credential=credential, from_address=prepared.sender.addr_spec,
            from_header=str(prepared.sender)[:998], subject=prepared.subject, to_addresses=prepared.to,
            cc_addresses=prepared.cc, bcc_count=sum(1 for r in prepared.recipients if r.kind == Recipient.Kind.BCC),
            tags=prepared.tags, metadata=prepared.metadata, template_ref=prepared.template_ref,
            body_size_bytes=len(prepared.raw), has_attachments=prepared.has_attachments,
            queued_at=now, expires_at=expires_at,
        )
        message.body = crypto.encrypt(prepared.raw, message.body_associated_data)
        suppressed = {r.email for r in prepared.suppressed}
        recipients = [
            Recipient(
                tenant=tenant, message=message, email=r.email, domain=domain_of(r.email), kind=r.kind,
                status=Recipient.Status.SUPPRESSED if r.email in suppressed else Recipient.Status.QUEUED,
                next_attempt_at=now, enqueued_at=None if r.email in suppressed else now,
            )
            for r in prepared.recipients
        ]
        rows.append((message, recipients, len(prepared.accepted)))

    if connection.vendor == "postgresql" and sum(len(m.body) for m, _, _ in rows) <= ONE_STATEMENT_MAX_BODY_BYTES:
        results = _store_in_one_statement(tenant, rows, idempotency, endpoints)
    else:
        results = _store_in_transaction(tenant, rows, idempotency, endpoints)
    accepted = iter(row for row, outcome in zip(rows, results) if outcome is None)
    out = []
    for outcome in results:
        if outcome is None:
            message, recipients, _ = next(accepted)
            out.append(SubmitResult(response=_response(message, recipients), message=message, recipients=recipients))
        else:
            out.append(outcome)
    return out


def _store_in_one_statement(tenant, rows, idempotency, endpoints) -> list:
    """PostgreSQL: the quota reservation, the Idempotency-Key, the messages, recipients, events
    and webhook deliveries in ONE autocommitted statement (bulk_insert.one_statement), the rows
    inserted only if the reservation succeeded. It replaces a quota UPDATE and its commit, BEGIN,
    three to five INSERTs and COMMIT: four to six round trips and one WAL flush fewer, and a
    crash can no longer leave a reservation without its messages. The counter row's lock is now
    held while the rows are inserted (until the statement commits), no longer only for the
    UPDATE. The per-minute rate limit (Redis) is taken first and refunded if the statement
    refuses or fails. A batch whose total does not fit is reserved message by message instead
    (`_store_each_reserved`), so those that fit go out."""
    from tenants import limits, ratelimit

    total = sum(count for _, _, count in rows)
    try:
        rate_state = ratelimit.hit(tenant=tenant, count=total)
    except DispatchError:
        if len(rows) == 1:
            raise
        return _store_each_reserved(tenant, rows, endpoints)
    try:
        stored, used = _execute_store(tenant, rows, idempotency, endpoints,
                                      gate=limits.reservation_gate(tenant=tenant, count=total))
    except BaseException:
        ratelimit.refund(rate_state, total)
        raise
    if stored:
        return [None] * len(rows)
    ratelimit.refund(rate_state, total)
    if len(rows) == 1:
        raise limits.quota_exceeded(tenant, used)
    return _store_each_reserved(tenant, rows, endpoints)


def _store_each_reserved(tenant, rows, endpoints) -> list:
    """A batch refused as a whole: reserve message by message (autocommitted), then store those
    that were admitted in one statement, giving their reservations back if that fails."""
    results, reserved = _reserve_each(tenant, [count for _, _, count in rows])
    accepted_rows = [row for row, outcome in zip(rows, results) if outcome is None]
    if accepted_rows:
        try:
            _execute_store(tenant, accepted_rows, None, endpoints, gate=None)
        except BaseException:
            _give_back(tenant, reserved)
            raise
    return results


def _execute_store(tenant, rows, idempotency, endpoints, *, gate):
    """Gather the rows (`_insert`, through the same insert_many and event code as the ORM path)
    into one statement and run it; returns (stored, recipients used before when refused)."""
    with one_statement() as statement:
        if idempotency:
            insert_many([_idempotency_key(tenant, idempotency, rows)])
        _insert(tenant, rows, endpoints)
    gate_sql, probe_sql, params = gate or (None, None, None)
    try:
        stored, used = statement.execute(gate=gate_sql, probe=probe_sql, params=params)
    except IntegrityError as exc:
        if idempotency and _violates(exc, _IDEMPOTENCY_UNIQUE):
            raise _IdempotencyRace() from None  # a concurrent request with this key committed first
        raise
    if stored:
        _enqueue_after_commit(rows)
    return stored, used


def _violates(exc, constraint_name) -> bool:
    diag = getattr(exc.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None) == constraint_name


def _idempotency_key(tenant, idempotency, rows):
    return IdempotencyKey(tenant=tenant, key=idempotency[0], request_hash=idempotency[1],
                          response=_response(rows[0][0], rows[0][1]), status_code=200)


def _store_in_transaction(tenant, rows, idempotency, endpoints) -> list:
    """Other databases (SQLite in development), and batches too large for one statement on
    PostgreSQL: quota and rate limit first, then the rows in a transaction."""
    # Quota and rate limit are taken BEFORE the transaction, each as a single autocommitted
    # statement: the UPDATE of the tenant's monthly counter row then holds that row's lock only
    # while the database executes and commits it, never while this process works or waits
    # between statements (a lock held across client round trips turns concurrent submissions
    # of one tenant into a convoy under load). If storing fails, everything is given back; a
    # crash in between can only over-count, never let a tenant pass its quota.
    results, reserved = _reserve(tenant, [count for _, _, count in rows])
    accepted_rows = [row for row, outcome in zip(rows, results) if outcome is None]
    try:
        with transaction.atomic():
            if idempotency:
                try:
                    with transaction.atomic():
                        _idempotency_key(tenant, idempotency, rows).save(force_insert=True)
                except IntegrityError:
                    raise _IdempotencyRace() from None
            _insert(tenant, accepted_rows, endpoints)
            _enqueue_after_commit(accepted_rows)
    except BaseException:
        _give_back(tenant, reserved)
        raise
    return results


def _insert(tenant, rows, endpoints):
    """INSERT messages and recipients, and record their submission events (for `endpoints`,
    the tenant's enabled webhook endpoints if already read)."""
    insert_many([m for m, _, _ in rows])
    insert_many([r for _, rs, _ in rows for r in rs])
    events.emit_many(
        [
            ("sent" if r.status == Recipient.Status.QUEUED else "suppressed", r, message)
            for message, recipients, _ in rows
            for r in recipients
        ],
        tenant=tenant,
        endpoints=endpoints,
    )


def _enqueue_after_commit(rows):
    """Delivery of the stored rows' queued recipients, published once they are committed."""
    queued_ids = [r.id for _, rs, _ in rows for r in rs if r.status == Recipient.Status.QUEUED]
    transaction.on_commit(lambda: enqueue_delivery(queued_ids))


def _give_back(tenant, reserved):
    for count, state in reserved:
        try:
            release_quota_and_rate(tenant, count, state)
        except Exception:  # noqa: BLE001 - the database may be what failed: over-count, never raise over the cause
            logger.warning("could not give back %d reserved recipient(s) of tenant %s", count, tenant.pk, exc_info=True)


def _reserve(tenant, counts):
    """Rate limit and quota per message: returns (outcomes, reserved) with outcomes None
    (accepted) or the error, and reserved the (count, rate state) pairs to give back if storing
    fails. One message: its error is raised. Many: one reservation for the total first (one
    UPDATE), and only when that is refused message by message, so those that fit are accepted."""
    if len(counts) == 1:
        return [None], [(counts[0], check_quota_and_rate(tenant, counts[0]))]
    try:
        return [None] * len(counts), [(sum(counts), check_quota_and_rate(tenant, sum(counts)))]
    except DispatchError:
        return _reserve_each(tenant, counts)


def _reserve_each(tenant, counts):
    outcomes, reserved = [], []
    for count in counts:
        try:
            reserved.append((count, check_quota_and_rate(tenant, count)))
            outcomes.append(None)
        except DispatchError as exc:
            outcomes.append(exc)
    return outcomes, reserved


def enqueue_delivery(recipient_ids):
    """Publish delivery tasks (IDs only). A broker outage is logged, not raised: the rows are
    committed and the delivery sweeper picks up queued recipients that were never claimed."""
    if not recipient_ids:
        return
    from dispatch_site.celery import app as celery_app
    from sending.delivery.services import kick_needed

    if not kick_needed():
        return  # a delivery task is outstanding and will drain these rows too (perf: coalesced kicks)
    for start in range(0, len(recipient_ids), DELIVERY_TASK_CHUNK):
        chunk = recipient_ids[start : start + DELIVERY_TASK_CHUNK]
        try:
            celery_app.send_task(DELIVERY_TASK, args=[chunk], queue="delivery", retry=False)
        except Exception:  # noqa: BLE001 - any broker failure: the sweeper recovers
            logger.warning("could not enqueue delivery of %d recipient(s); the sweeper will", len(chunk), exc_info=True)


# --- after submission -------------------------------------------------------------------------
_ACTIVE = {Recipient.Status.QUEUED, Recipient.Status.SENDING, Recipient.Status.DEFERRED}


def aggregate_status(counts: dict) -> str:
    """The message status from its recipients' status counts."""
    active = {s: n for s, n in counts.items() if s in _ACTIVE and n}
    if active:
        if set(active) == {Recipient.Status.QUEUED} and not any(
            counts.get(s) for s in (Recipient.Status.DELIVERED, Recipient.Status.BOUNCED, Recipient.Status.FAILED)
        ):
            return Message.Status.QUEUED
        if Recipient.Status.DEFERRED in active and Recipient.Status.SENDING not in active:
            return Message.Status.DEFERRED
        return Message.Status.SENDING
    delivered = counts.get(Recipient.Status.DELIVERED, 0)
    bounced = counts.get(Recipient.Status.BOUNCED, 0)
    failed = counts.get(Recipient.Status.FAILED, 0)
    if delivered + bounced + failed == 0:
        return Message.Status.SUPPRESSED
    if delivered and not (bounced or failed):
        return Message.Status.DELIVERED
    if delivered:
        return Message.Status.PARTIALLY_DELIVERED
    return Message.Status.BOUNCED if bounced else Message.Status.FAILED


def message_refresh_status(*, message_id) -> str:
    """Recompute Message.status / bounce_type / delivered_at / bounced_at from its recipients.
    Call after changing recipient rows (in or out of a transaction); the message row lock
    serialises concurrent refreshes of the same message."""
    with transaction.atomic():
        message = Message.objects.select_for_update().only("id", "status").filter(pk=message_id).first()
        if message is None:
            return None
        rows = (
            Recipient.objects.filter(message_id=message_id)
            .values("status", "bounce_type")
            .annotate(n=Count("id"), delivered=Max("delivered_at"), bounced=Max("bounced_at"))
        )
        counts, bounce_types, delivered_at, bounced_at = {}, set(), None, None
        for row in rows:
            counts[row["status"]] = counts.get(row["status"], 0) + row["n"]
            if row["bounce_type"]:
                bounce_types.add(row["bounce_type"])
            delivered_at = max(filter(None, [delivered_at, row["delivered"]]), default=None)
            bounced_at = max(filter(None, [bounced_at, row["bounced"]]), default=None)
        status = aggregate_status(counts)
        bounce_type = "hard" if "hard" in bounce_types else ("soft" if "soft" in bounce_types else None)
        Message.objects.filter(pk=message_id).update(
            status=status, bounce_type=bounce_type, delivered_at=delivered_at, bounced_at=bounced_at
        )
    return status


def message_erase_body(*, tenant, message_id):
    """DELETE .../emails/{id}: the body (content, attachments, and the signed copies kept in
    capture mode) is destroyed; the row keeps its metadata (addresses, subject, status,
    timestamps, per-recipient results) for accounting until it expires with the plan's log
    retention."""
    from dispatch_site.errors import NotFound

    with transaction.atomic():
        updated = Message.objects.for_tenant(tenant).filter(pk=message_id).update(body=None, body_erased_at=timezone.now())
        if not updated:
            raise NotFound("Email not found.", code="EMAIL_NOT_FOUND")
        Recipient.objects.filter(tenant=tenant, message_id=message_id).update(captured_message=None)
