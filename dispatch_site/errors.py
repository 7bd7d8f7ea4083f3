"""The one family of errors. Every interface maps them the same way:
HTTP views -> the JSON envelope with `status`; the SMTP gateway -> `smtp_reply`;
tasks -> retry or give up. Services raise these, never HTTP or SMTP specifics."""


class DispatchError(Exception):
    status = 400
    code = "BAD_REQUEST"
    default_message = "The request could not be processed."
    # (reply code, enhanced status code) used by the SMTP gateway (RFC 3463).
    smtp_reply = (550, "5.0.0")

    def __init__(self, message=None, *, details=None, code=None, status=None):
        self.message = message or self.default_message
        self.details = details
        if code:
            self.code = code
        if status:
            self.status = status
        super().__init__(self.message)

    @property
    def smtp_text(self):
        reply, enhanced = self.smtp_reply
        return f"{reply} {enhanced} {self.message}"


class ValidationFailed(DispatchError):
    code = "VALIDATION_ERROR"
    default_message = "The request body is invalid."
    smtp_reply = (550, "5.6.0")


class Unauthenticated(DispatchError):
    status = 401
    code = "UNAUTHORIZED"
    default_message = "Missing or invalid authentication credentials."
    smtp_reply = (535, "5.7.8")


class PermissionDenied(DispatchError):
    status = 403
    code = "FORBIDDEN"
    default_message = "You do not have permission to perform this action."
    smtp_reply = (550, "5.7.1")


class CredentialMismatch(PermissionDenied):
    code = "CREDENTIAL_MISMATCH"
    default_message = "This credential does not belong to the requested tenant."


class TenantNotActive(PermissionDenied):
    code = "TENANT_NOT_ACTIVE"
    default_message = "Tenant is not active."
    smtp_reply = (550, "5.7.1")


class NotFound(DispatchError):
    status = 404
    code = "NOT_FOUND"
    default_message = "Not found."
    smtp_reply = (550, "5.1.1")


class Conflict(DispatchError):
    status = 409
    code = "CONFLICT"
    default_message = "The request conflicts with the current state."
    smtp_reply = (550, "5.0.0")


class DomainNotVerified(DispatchError):
    code = "DOMAIN_NOT_VERIFIED"
    default_message = "The sender address is not on a verified domain of this tenant."
    smtp_reply = (550, "5.7.1")


class RecipientSuppressed(DispatchError):
    code = "RECIPIENT_SUPPRESSED"
    default_message = "All recipients are on the suppression list."
    smtp_reply = (550, "5.1.1")


class TooManyRecipients(DispatchError):
    code = "TOO_MANY_RECIPIENTS"
    default_message = "Too many recipients."
    smtp_reply = (452, "4.5.3")


class MessageTooLarge(DispatchError):
    status = 413
    code = "MESSAGE_TOO_LARGE"
    default_message = "The message exceeds the maximum size."
    smtp_reply = (552, "5.3.4")


class QuotaExceeded(DispatchError):
    code = "QUOTA_EXCEEDED"
    default_message = "Monthly quota exceeded."
    smtp_reply = (552, "5.3.4")


class RateLimited(DispatchError):
    status = 429
    code = "RATE_LIMITED"
    default_message = "Per-minute rate limit exceeded for your plan."
    smtp_reply = (451, "4.7.1")

    def __init__(self, message=None, *, retry_after=60, **kwargs):
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class TemporaryFailure(DispatchError):
    """Something we depend on is down; the client should retry (never a 2xx/250)."""

    status = 503
    code = "SERVICE_UNAVAILABLE"
    default_message = "Service temporarily unavailable, try again."
    smtp_reply = (451, "4.3.0")
