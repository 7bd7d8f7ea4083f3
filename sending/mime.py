"""Building the RFC 5322 message (standard library `email`) and finishing one copy per
recipient at delivery time.

Stored at submission ("prepared"): the complete message without per-recipient headers and
without a DKIM signature. At delivery `finalize_for_recipient` adds List-Unsubscribe (RFC 8058
one-click, a token per recipient) and signs the copy with the from-domain's key.
"""
import binascii
import logging
import re
import uuid
from dataclasses import dataclass
from email import charset as email_charset
from email import encoders
from email import policy as email_policy
from email.header import Header
from email.headerregistry import Address
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr

from django.conf import settings
from django.utils import timezone

from dispatch_site.errors import ValidationFailed

from .addresses import has_control_chars
from .dkim import dkim_sign_fields, normalize_line_endings
from .unsubscribe import unsubscribe_url

logger = logging.getLogger(__name__)

# CRLF line endings and lines folded at 78.
POLICY = email_policy.compat32.clone(linesep="\r\n")
# The EmailMessage flavour, for code that edits parsed messages (templates over SMTP).
MODERN_POLICY = email_policy.SMTP.clone(cte_type="7bit")
_UTF8_QP = email_charset.Charset("utf-8")
_UTF8_QP.header_encoding = email_charset.QP
_UTF8_QP.body_encoding = email_charset.QP

# Structural headers a client may not set through `headers`: they come from the request's own
# fields or from us, and a second copy would confuse receivers or break the DKIM signature.
DENIED_HEADERS = frozenset({
    "from", "to", "cc", "bcc", "subject", "date", "message-id", "mime-version", "dkim-signature",
    "return-path", "received", "sender", "reply-to", "content-type", "content-transfer-encoding",
    "content-disposition", "content-id", "arc-seal", "arc-message-signature", "arc-authentication-results",
    "authentication-results", "delivered-to", "resent-from", "resent-to", "resent-cc", "resent-bcc",
    "resent-date", "resent-message-id", "resent-sender",
})
DENIED_HEADER_PREFIXES = ("content-", "list-unsubscribe", "x-dispatch-")
CONTROL_HEADER_PREFIX = b"x-dispatch-"
MAX_CUSTOM_HEADERS = 50
MAX_HEADER_VALUE = 998

_HEADER_NAME_RE = re.compile(r"^[!-9;-~]{1,76}$")  # RFC 5322 ftext
_CONTENT_TYPE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$")
_CONTENT_ID_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.@]{1,250}$")


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    content: bytes
    inline: bool = False
    content_id: str | None = None


def new_message_id() -> str:
    """A Message-ID on our host name, without angle brackets."""
    return f"{uuid.uuid4().hex}@{settings.DISPATCH_HOSTNAME}"


def check_header_text(value, field):
    """Header text must be a string without CR, LF or other control characters (no injection)."""
    if not isinstance(value, str):
        raise ValidationFailed(f"{field}: must be a string", details={field: ["must be a string"]})
    if has_control_chars(value.replace("\t", " ")):
        raise ValidationFailed(
            f"{field}: line breaks and control characters are not allowed",
            code="HEADER_INJECTION", details={field: ["contains line breaks or control characters"]},
        )
    return value


def validate_custom_headers(headers) -> list[tuple[str, str]]:
    if headers in (None, {}):
        return []
    if not isinstance(headers, dict):
        raise ValidationFailed("headers: must be an object of name -> value", details={"headers": ["must be an object"]})
    if len(headers) > MAX_CUSTOM_HEADERS:
        raise ValidationFailed(f"headers: at most {MAX_CUSTOM_HEADERS} custom headers", details={"headers": ["too many"]})
    result = []
    for name, value in headers.items():
        check_header_text(name, "headers")
        if not _HEADER_NAME_RE.match(name):
            raise ValidationFailed(f"headers: invalid header name {name[:80]!r}", details={"headers": [f"invalid name {name[:80]!r}"]})
        lowered = name.lower()
        if lowered in DENIED_HEADERS or lowered.startswith(DENIED_HEADER_PREFIXES):
            raise ValidationFailed(
                f"headers: {name} cannot be set as a custom header", code="HEADER_NOT_ALLOWED",
                details={"headers": [f"{name} is not allowed"]},
            )
        check_header_text(value, f"headers.{name}")
        if len(value) > MAX_HEADER_VALUE:
            raise ValidationFailed(f"headers.{name}: too long", details={"headers": [f"{name} is too long"]})
        result.append((name, value))
    return result


def validate_attachment(*, filename, content_type, content_id, inline, index):
    field = f"attachments[{index}]"
    check_header_text(filename, f"{field}.filename")
    if not filename.strip() or len(filename) > 255:
        raise ValidationFailed(f"{field}.filename: 1 to 255 characters", details={field: ["filename must be 1 to 255 characters"]})
    check_header_text(content_type, f"{field}.content_type")
    if not _CONTENT_TYPE_RE.match(content_type) or content_type.lower().split("/")[0] in ("multipart", "message"):
        raise ValidationFailed(
            f"{field}.content_type: not a valid MIME type ({content_type[:80]!r})",
            details={field: ["content_type must be a MIME type like application/pdf"]},
        )
    if inline and content_id is None:
        raise ValidationFailed(f"{field}.content_id: required for inline attachments", details={field: ["content_id is required when inline"]})
    if content_id is not None:
        # Written as the part's Content-ID whether or not the part is inline.
        check_header_text(content_id, f"{field}.content_id")
        if not _CONTENT_ID_RE.match(content_id):
            raise ValidationFailed(f"{field}.content_id: invalid (no angle brackets or spaces)", details={field: ["invalid content_id"]})


def header_line(name: str, value: str) -> bytes:
    """One header field, CRLF-terminated: ASCII values folded at spaces to 78 columns where
    they can be, anything else RFC 2047 encoded (UTF-8). Written directly rather than through
    the email generator, whose Header folding costs more than the rest of the message."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"line break in {name} header")  # callers validate; this is the backstop
    if value.isascii():
        lines, line = [], f"{name}:"
        for word in value.split(" "):
            if len(line) + 1 + len(word) > 78 and line.strip() and not line.endswith(":"):
                lines.append(line)
                line = ""
            line += " " + word
        lines.append(line)
        if max(map(len, lines)) <= 998:
            return ("\r\n".join(lines) + "\r\n").encode("ascii")
    # Non-ASCII, or a word too long for one line: encoded words, which can be split anywhere.
    encoded = Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
    return f"{name}: {encoded}\r\n".encode("ascii")


def _mailboxes(addresses: list[Address]) -> str:
    return ", ".join(formataddr((a.display_name, a.addr_spec), charset="utf-8") for a in addresses)


def _text_part(body: str, subtype: str) -> MIMEText:
    # 7bit when it can be, quoted-printable UTF-8 otherwise: no hop needs 8BITMIME.
    if body.isascii() and all(len(line) <= 998 for line in body.splitlines()):
        part = MIMEText(body, subtype, "us-ascii")
    else:
        part = MIMEText(body, subtype, _UTF8_QP)
    del part["MIME-Version"]
    return part


def _text_entity(body: str, subtype: str) -> bytes:
    """The same text entity as `_text_part`, written directly (headers, blank line, body, CRLF
    line endings): the email generator costs more than the rest of a send. 7bit us-ascii when
    every line fits, else quoted-printable UTF-8 (binascii's encoder: lines of at most 76,
    trailing white space encoded)."""
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    if body.isascii() and all(len(line) <= 998 for line in body.split("\n")):
        head = f'Content-Type: text/{subtype}; charset="us-ascii"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n'
        return head.encode("ascii") + body.replace("\n", "\r\n").encode("ascii")
    encoded = binascii.b2a_qp(body.encode("utf-8"), quotetabs=False, istext=True, header=False)
    head = f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
    return head.encode("ascii") + encoded.replace(b"\n", b"\r\n")


def _multipart_entity(subtype: str, parts: list[bytes]) -> bytes:
    boundary = f"=_{uuid.uuid4().hex}".encode("ascii")  # random: cannot occur in the parts by chance
    out = [b'Content-Type: multipart/' + subtype.encode("ascii") + b'; boundary="' + boundary + b'"\r\n\r\n']
    for part in parts:
        out.append(b"--" + boundary + b"\r\n" + part + b"\r\n")
    out.append(b"--" + boundary + b"--\r\n")
    return b"".join(out)


def _attachment_part(attachment: Attachment, disposition: str) -> MIMEBase:
    maintype, _, subtype = attachment.content_type.partition("/")
    part = MIMEBase(maintype, subtype)
    part.set_payload(attachment.content)
    encoders.encode_base64(part)
    filename = attachment.filename if attachment.filename.isascii() else ("utf-8", "", attachment.filename)
    part.add_header("Content-Disposition", disposition, filename=filename)
    if attachment.content_id:
        part["Content-ID"] = f"<{attachment.content_id}>"
    del part["MIME-Version"]
    return part


def _multipart(subtype: str, parts) -> MIMEMultipart:
    # A random boundary cannot occur in the content by chance; choosing it here also spares
    # the generator its scan of the whole body for a collision.
    container = MIMEMultipart(subtype, boundary=f"=_{uuid.uuid4().hex}", _subparts=list(parts))
    del container["MIME-Version"]
    return container


def build_message(
    *, sender: Address, to: list[Address], cc: list[Address], reply_to: list[Address], subject: str,
    html: str | None, text: str | None, attachments: list[Attachment], headers: list[tuple[str, str]],
    message_id: str, date=None,
) -> bytes:
    """The prepared message: multipart/alternative (text + html), the html wrapped in
    multipart/related when there are inline parts, everything in multipart/mixed when there
    are attachments. Callers have validated every input.

    Headers and the text/html entities are written directly (the email generator was the
    largest cost of a /send-bulk); with attachments the body is built with the `email.mime`
    classes and the compat32 policy."""
    if attachments:
        body = _body_with_attachments(html=html, text=text, attachments=attachments)
    else:
        # The common case (text and/or html, no attachments) is written directly.
        parts = [_text_entity(text, "plain")] if text is not None else []
        parts += [_text_entity(html, "html")] if html is not None else []
        body = _multipart_entity("alternative", parts) if len(parts) == 2 else parts[0] if parts else _text_entity("", "plain")

    head = [
        header_line("From", _mailboxes([sender])),
        header_line("To", _mailboxes(to)) if to else b"",
        header_line("Cc", _mailboxes(cc)) if cc else b"",
        header_line("Reply-To", _mailboxes(reply_to)) if reply_to else b"",
        header_line("Subject", subject),
        header_line("Date", format_datetime(date or timezone.now())),
        header_line("Message-ID", f"<{message_id}>"),
        b"MIME-Version: 1.0\r\n",
    ]
    head += [header_line(name, value) for name, value in headers]
    return b"".join(head) + body


def _body_with_attachments(*, html, text, attachments) -> bytes:
    """The MIME body (its Content-* headers, blank line, content) when there are attachments,
    through the `email.mime` classes."""
    inline = [a for a in attachments if a.inline and html is not None]
    attached = [a for a in attachments if not (a.inline and html is not None)]

    html_part = _text_part(html, "html") if html is not None else None
    if html_part is not None and inline:
        html_part = _multipart("related", [html_part] + [_attachment_part(a, "inline") for a in inline])
    text_part = _text_part(text, "plain") if text is not None else None
    if html_part is not None and text_part is not None:
        body = _multipart("alternative", [text_part, html_part])
    else:
        body = html_part or text_part or _text_part("", "plain")
    if attached:
        body = _multipart(
            "mixed", [body] + [_attachment_part(a, "inline" if a.inline else "attachment") for a in attached]
        )
    return body.as_bytes(policy=POLICY)


def split_head(raw: bytes) -> tuple[list[bytes], bytes]:
    """Header fields (each with its continuation lines, CRLF-terminated) and the rest of the
    message starting at the blank line."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        head, rest = raw if raw.endswith(b"\r\n") else raw + b"\r\n", b"\r\n"
    else:
        head, rest = raw[: end + 2], raw[end + 2 :]
    fields = []
    for line in head.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line + b"\r\n"
        else:
            fields.append(line + b"\r\n")
    return fields, rest


def field_name(field: bytes) -> bytes:
    return field.split(b":", 1)[0].strip().lower()


def strip_headers(raw: bytes, *, names=(), prefixes=()) -> bytes:
    fields, rest = split_head(raw)
    kept = [f for f in fields if not (field_name(f) in names or field_name(f).startswith(tuple(prefixes)))]
    return b"".join(kept) + rest


_PER_RECIPIENT_HEADERS = (b"list-unsubscribe", b"list-unsubscribe-post", b"bcc")


def finalize_for_recipient(raw_prepared: bytes, *, message, recipient, domain) -> bytes:
    """The exact bytes to send to one recipient: X-Dispatch-* control headers and any Bcc
    removed, our RFC 8058 List-Unsubscribe pair added (replacing a client's), DKIM-signed with
    the from-domain's key (unsigned, with a warning, if `domain` is None: the domain was
    deleted after the message was accepted)."""
    fields, rest = split_head(normalize_line_endings(raw_prepared))
    kept = [
        f for f in fields
        if field_name(f) not in _PER_RECIPIENT_HEADERS and not field_name(f).startswith(CONTROL_HEADER_PREFIX)
    ]
    url = unsubscribe_url(recipient)
    kept.append(b"List-Unsubscribe: <" + url.encode("ascii") + b">\r\n")
    kept.append(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
    if domain is None:
        logger.warning("message %s: from-domain is gone, sending unsigned", message.pk)
        return b"".join(kept) + rest
    from domains.services import domain_dkim_private_key

    # The fields as split here, so that signing does not parse the header block again.
    return dkim_sign_fields(kept, rest, domain=domain.name, selector=domain.dkim_selector,
                            private_key_pem=domain_dkim_private_key(domain))
