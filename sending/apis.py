"""HTTP API: send, send-bulk, the email log and the suppression list."""
import base64
import binascii

from drf_spectacular.utils import extend_schema

from dispatch_site.api.pagination import paginate_by_offset, paginate_by_page
from dispatch_site.api.responses import created, ok, timestamp
from dispatch_site.api.views import TenantScopedAPIView
from dispatch_site.errors import DispatchError, ValidationFailed
from tenants.apis import RateLimitHeaders

from . import selectors, services
from .mime import Attachment
from .services import SendRequest
from .suppressions import suppression_add, suppression_remove

MAX_BULK_MESSAGES = 100
MAX_ATTACHMENTS = 100
MAX_IDEMPOTENCY_KEY = 255


def _credential(request):
    return getattr(request.user, "credential", None)


# --- request parsing ---------------------------------------------------------------------------
def _bad(field, reason):
    return ValidationFailed(f"{field}: {reason}", details={field: [reason]})


def _optional_str(data, name):
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise _bad(name, "must be a string")
    return value


def _address_list(data, name):
    value = data.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(name, "must be a list of email addresses")
    return value


def _attachments(value):
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad("attachments", "must be a list")
    if len(value) > MAX_ATTACHMENTS:
        raise _bad("attachments", f"at most {MAX_ATTACHMENTS} attachments")
    result = []
    for index, item in enumerate(value):
        field = f"attachments[{index}]"
        if not isinstance(item, dict):
            raise _bad(field, "must be an object")
        for key in ("filename", "content_type", "content"):
            if not isinstance(item.get(key), str):
                raise _bad(f"{field}.{key}", "required string")
        inline = item.get("inline")
        if inline is None:
            inline = False
        elif not isinstance(inline, bool):
            raise _bad(f"{field}.inline", "must be a boolean")
        content_id = item.get("content_id")
        if content_id is not None and not isinstance(content_id, str):
            raise _bad(f"{field}.content_id", "must be a string")
        try:
            content = base64.b64decode("".join(item["content"].split()), validate=True)
        except (binascii.Error, ValueError):
            raise _bad(f"{field}.content", "not valid base64") from None
        result.append(Attachment(
            filename=item["filename"], content_type=item["content_type"], content=content, inline=inline,
            content_id=content_id,
        ))
    return result


def parse_send_request(data) -> SendRequest:
    """The JSON body of /send (or one entry of /send-bulk) as a SendRequest; types only —
    the service validates the values."""
    if not isinstance(data, dict):
        raise ValidationFailed("The request body must be a JSON object.")
    if not isinstance(data.get("from"), str):
        raise _bad("from", "required string")
    use_master = data.get("use_master_template")
    if use_master is None:  # null means "not given", as for every other optional field
        use_master = False
    elif not isinstance(use_master, bool):
        raise _bad("use_master_template", "must be a boolean")
    variables = data.get("template_variables")
    if variables is not None and not isinstance(variables, dict):
        raise _bad("template_variables", "must be an object")
    headers = data.get("headers") or {}
    if not isinstance(headers, dict):
        raise _bad("headers", "must be an object")
    tags = data.get("tags") or []
    if not isinstance(tags, list):
        raise _bad("tags", "must be a list of strings")
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise _bad("metadata", "must be an object")
    if "to" not in data:
        raise _bad("to", "required")
    return SendRequest(
        from_=data["from"],
        to=_address_list(data, "to"),
        cc=_address_list(data, "cc"),
        bcc=_address_list(data, "bcc"),
        reply_to=_address_list(data, "reply_to"),
        subject=_optional_str(data, "subject"),
        html_body=_optional_str(data, "html_body"),
        text_body=_optional_str(data, "text_body"),
        template_id=_optional_str(data, "template_id"),
        template_variables=variables,
        use_master_template=use_master,
        attachments=_attachments(data.get("attachments")),
        headers=headers,
        tags=tags,
        metadata=metadata,
    )


def _idempotency_key(request):
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isascii() or not key.isprintable():
        raise ValidationFailed(
            f"Idempotency-Key: 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters",
            details={"Idempotency-Key": ["invalid"]},
        )
    return key


# --- send -----------------------------------------------------------------------------------
class SendView(RateLimitHeaders, TenantScopedAPIView):
    @extend_schema(request=dict, responses={200: dict}, tags=["sending"])
    def post(self, request, tenant_id):
        key = _idempotency_key(request)
        body = request.data
        result = services.submit(
            tenant=self.tenant, request=parse_send_request(body), credential=_credential(request),
            idempotency_key=key, request_hash=services.request_fingerprint(body) if key else None,
        )
        response = ok(result.response["data"], message=result.response["message"])
        if result.replayed:
            response["Idempotent-Replayed"] = "true"
        return response


class SendBulkView(RateLimitHeaders, TenantScopedAPIView):
    @extend_schema(request=dict, responses={200: dict}, tags=["sending"])
    def post(self, request, tenant_id):
        body = request.data
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not messages:
            raise _bad("messages", "a non-empty list of messages is required")
        if len(messages) > MAX_BULK_MESSAGES:
            raise _bad("messages", f"at most {MAX_BULK_MESSAGES} messages per request (got {len(messages)})")
        parsed = []
        for item in messages:
            try:
                parsed.append(parse_send_request(item))
            except DispatchError as exc:
                parsed.append(exc)
        requests = [p for p in parsed if isinstance(p, SendRequest)]
        outcomes = iter(services.submit_many(tenant=self.tenant, requests=requests, credential=_credential(request)) if requests else [])
        results, sent = [], 0
        for index, item in enumerate(parsed):
            outcome = next(outcomes) if isinstance(item, SendRequest) else item
            if isinstance(outcome, DispatchError):
                results.append({"index": index, "success": False, "message": outcome.message, "code": outcome.code})
            else:
                sent += 1
                data = outcome.response["data"]
                results.append({
                    "index": index, "success": True, "message": f"{outcome.queued} recipient(s) queued",
                    "id": data["id"], "message_id": data["message_id"], "recipients": data["recipients"],
                })
        failed = len(results) - sent
        return ok({"sent": sent, "failed": failed, "results": results}, message=f"{sent} email(s) queued, {failed} failed")


# --- email log --------------------------------------------------------------------------------
def email_summary(message):
    return {
        "id": str(message.id),
        "message_id": message.message_id,
        "from_address": message.from_address,
        "to_addresses": message.to_addresses,
        "subject": message.subject,
        "body_size_bytes": message.body_size_bytes,
        "has_attachments": message.has_attachments,
        "status": message.status,
        "bounce_type": message.bounce_type,
        "queued_at": timestamp(message.queued_at),
        "delivered_at": timestamp(message.delivered_at),
        "bounced_at": timestamp(message.bounced_at),
        "expires_at": timestamp(message.expires_at),
        "tags": message.tags,
        "source": message.source,
    }


def attempt_data(attempt):
    return {
        "started_at": timestamp(attempt.started_at),
        "duration_ms": attempt.duration_ms,
        "mx_host": attempt.mx_host,
        "remote_ip": attempt.remote_ip,
        "outcome": attempt.outcome,
        "response": {"code": attempt.response_code, "enhanced_status": attempt.enhanced_status or None,
                     "content": attempt.response_text},
    }


def recipient_data(recipient):
    return {
        "email": recipient.email,
        "kind": recipient.kind,
        "status": recipient.status,
        "attempts": recipient.attempts,
        "next_attempt_at": timestamp(recipient.next_attempt_at) if recipient.status in ("queued", "deferred") else None,
        "last_response": {
            "code": recipient.last_response_code,
            "enhanced_status": recipient.last_enhanced_status or None,
            "content": recipient.last_response_text or None,
        },
        "bounce": {"type": recipient.bounce_type, "classification": recipient.bounce_class or None}
        if recipient.bounce_type or recipient.bounce_class else None,
        "delivered_at": timestamp(recipient.delivered_at),
        "bounced_at": timestamp(recipient.bounced_at),
        "failed_at": timestamp(recipient.failed_at),
        "delivery_attempts": [attempt_data(a) for a in recipient.delivery_attempts.all()],
    }


def email_detail(message):
    data = email_summary(message)
    data.update(selectors.message_content(message))
    data.update({
        "from": message.from_header,
        "cc_addresses": message.cc_addresses,
        "bcc_count": message.bcc_count,
        "metadata": message.metadata,
        "template_id": message.template_ref or None,
        "body_erased_at": timestamp(message.body_erased_at),
        "recipients": [recipient_data(r) for r in message.recipients.all()],
    })
    return data


class EmailListView(TenantScopedAPIView):
    @extend_schema(responses={200: dict}, tags=["email log"])
    def get(self, request, tenant_id):
        params = request.query_params
        queryset = selectors.emails_of_tenant(
            self.tenant, status=params.get("status"), recipient=params.get("recipient"),
            date_from=params.get("date_from"), date_to=params.get("date_to"), tag=params.get("tag"),
        )
        items, pagination = paginate_by_page(request, queryset)
        return ok([email_summary(m) for m in items], pagination=pagination)


class EmailDetailView(TenantScopedAPIView):
    @extend_schema(responses={200: dict}, tags=["email log"])
    def get(self, request, tenant_id, log_id):
        return ok(email_detail(selectors.email_get(tenant=self.tenant, message_id=log_id)))

    @extend_schema(responses={200: dict}, tags=["email log"])
    def delete(self, request, tenant_id, log_id):
        services.message_erase_body(tenant=self.tenant, message_id=log_id)
        return ok(None, message="Email body erased; delivery metadata is kept until the log entry expires.")


# --- suppressions ------------------------------------------------------------------------------
def suppression_data(suppression):
    return {
        "id": str(suppression.id),
        "email": suppression.email,
        "reason": suppression.reason,
        "source": suppression.source,
        "bounce_class": suppression.bounce_class or None,
        "feedback_type": suppression.feedback_type or None,
        "source_message_id": str(suppression.source_message_id) if suppression.source_message_id else None,
        "created_at": timestamp(suppression.created_at),
    }


class SuppressionListView(TenantScopedAPIView):
    @extend_schema(request=dict, responses={201: dict, 200: dict}, tags=["suppressions"])
    def post(self, request, tenant_id):
        data = request.data
        if not isinstance(data, dict):
            raise ValidationFailed("The request body must be a JSON object.")
        email = data.get("email")
        if not isinstance(email, str):
            raise _bad("email", "required string")
        reason = data.get("reason") or ""
        if not isinstance(reason, str) or len(reason) > 1000:
            raise _bad("reason", "a string of at most 1000 characters")
        suppression, was_created = suppression_add(tenant=self.tenant, email=email, reason=reason)
        if was_created:
            return created(suppression_data(suppression), message="Added to the suppression list.")
        return ok(suppression_data(suppression), message="Already on the suppression list.")

    @extend_schema(responses={200: dict}, tags=["suppressions"])
    def get(self, request, tenant_id):
        search = request.query_params.get("search") or request.query_params.get("email")
        items, pagination = paginate_by_offset(request, selectors.suppressions_of_tenant(self.tenant, search=search))
        return ok([suppression_data(s) for s in items], pagination=pagination)


class SuppressionDetailView(TenantScopedAPIView):
    @extend_schema(responses={200: dict}, tags=["suppressions"])
    def get(self, request, tenant_id, suppression_id):
        return ok(suppression_data(selectors.suppression_get(tenant=self.tenant, suppression_id=suppression_id)))

    @extend_schema(responses={200: dict}, tags=["suppressions"])
    def delete(self, request, tenant_id, suppression_id):
        suppression_remove(tenant=self.tenant, suppression_id=suppression_id)
        return ok(None, message="Removed from the suppression list.")

