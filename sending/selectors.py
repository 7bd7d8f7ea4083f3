"""Reads: the email log and the suppression list, always scoped to one tenant."""
import datetime
import json
import logging
from email import policy as email_policy
from email.parser import BytesParser

from django.db import connection
from django.db.models import Prefetch
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from dispatch_site import crypto
from dispatch_site.errors import NotFound, ValidationFailed

from .models import DeliveryAttempt, Message, Recipient, Suppression

logger = logging.getLogger(__name__)

LOG_LIST_FIELDS = (
    "id", "tenant_id", "message_id", "from_address", "to_addresses", "subject", "body_size_bytes",
    "has_attachments", "status", "bounce_type", "queued_at", "delivered_at", "bounced_at", "expires_at",
    "tags", "source",
)


def _moment(value, name, *, end=False):
    """An ISO 8601 date or date-time from a query parameter. A bare date_to covers that whole day."""
    try:
        day = parse_date(value)
        moment = None if day else parse_datetime(value)
    except ValueError:
        day = moment = None
    if day is None and moment is None:
        raise ValidationFailed(f"{name}: expected an ISO 8601 date or date-time", details={name: ["invalid date"]})
    if day is not None:
        moment = datetime.datetime.combine(day + datetime.timedelta(days=1 if end else 0), datetime.time.min)
        if end:
            moment -= datetime.timedelta(microseconds=1)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, datetime.timezone.utc)
    return moment


def emails_of_tenant(tenant, *, status=None, recipient=None, date_from=None, date_to=None, tag=None):
    """The email log, newest first, filtered. Bodies are never loaded here."""
    queryset = Message.objects.for_tenant(tenant).only(*LOG_LIST_FIELDS).order_by("-queued_at", "-id")
    if status:
        if status not in Message.Status.values:
            raise ValidationFailed(
                f"status: one of {', '.join(Message.Status.values)}", details={"status": ["unknown status"]}
            )
        queryset = queryset.filter(status=status)
    if recipient:
        queryset = queryset.filter(
            id__in=Recipient.objects.filter(tenant=tenant, email__iexact=recipient.strip()).values("message_id")
        )
    if date_from:
        queryset = queryset.filter(queued_at__gte=_moment(date_from, "date_from"))
    if date_to:
        queryset = queryset.filter(queued_at__lte=_moment(date_to, "date_to", end=True))
    if tag:
        if connection.features.supports_json_field_contains:
            queryset = queryset.filter(tags__contains=[tag])
        else:  # SQLite (development): match the tag in the stored JSON text
            queryset = queryset.filter(tags__icontains=json.dumps(tag))
    return queryset


def email_get(*, tenant, message_id):
    message = (
        Message.objects.for_tenant(tenant)
        .filter(pk=message_id)
        .prefetch_related(
            Prefetch(
                "recipients",
                queryset=Recipient.objects.defer("captured_message").order_by("id").prefetch_related(
                    Prefetch("delivery_attempts", queryset=DeliveryAttempt.objects.order_by("started_at", "id"))
                ),
            )
        )
        .first()
    )
    if message is None:
        raise NotFound("Email not found.", code="EMAIL_NOT_FOUND")
    return message


def message_raw(message) -> bytes | None:
    """The stored (prepared) message, decrypted; None once erased or if it cannot be decrypted."""
    if message.body is None:
        return None
    try:
        return crypto.decrypt(bytes(message.body), message.body_associated_data)
    except crypto.DecryptionError:
        logger.error("message %s: body does not decrypt", message.pk)
        return None


def message_content(message) -> dict:
    """Headers, text and html bodies and attachment descriptions of the stored message."""
    raw = message_raw(message)
    if raw is None:
        return {"headers": None, "html_body": None, "text_body": None, "attachments": []}
    parsed = BytesParser(policy=email_policy.default).parsebytes(raw)
    html = parsed.get_body(preferencelist=("html",))
    text = parsed.get_body(preferencelist=("plain",))
    attachments = []
    for part in parsed.walk():
        if part.is_multipart() or part in (html, text):
            continue
        disposition = part.get_content_disposition()
        if disposition in ("attachment", "inline") or part.get_filename():
            payload = part.get_payload(decode=True) or b""
            attachments.append({
                "filename": part.get_filename(),
                "content_type": part.get_content_type(),
                "size_bytes": len(payload),
                "inline": disposition == "inline",
                "content_id": (part.get("Content-ID") or "").strip("<>") or None,
            })
    return {
        "headers": [[name, str(value)] for name, value in parsed.items()],
        "html_body": html.get_content() if html is not None else None,
        "text_body": text.get_content() if text is not None else None,
        "attachments": attachments,
    }


def suppressions_of_tenant(tenant, *, search=None):
    queryset = Suppression.objects.for_tenant(tenant).order_by("-created_at", "id")
    if search:
        queryset = queryset.filter(email__contains=search.strip().lower())
    return queryset


def suppression_get(*, tenant, suppression_id):
    suppression = Suppression.objects.for_tenant(tenant).filter(pk=suppression_id).first()
    if suppression is None:
        raise NotFound("Suppression not found.", code="SUPPRESSION_NOT_FOUND")
    return suppression

