"""Role handlers: what each SMTP role asks of the rest of Dispatch. Protocol code stays in
protocol.py; everything here is a call into `tenants`, `domains` or `sending` (run in the
database thread pool) and the mapping of its outcome to a reply."""
import logging
import time

from django.db import DatabaseError
from redis.exceptions import RedisError

from dispatch_site.errors import DispatchError, TemporaryFailure, TenantNotActive
from domains.selectors import sending_domain_for
from sending.services import submit_raw_many
from sending.suppressions import are_suppressed
from tenants.models import Credential
from tenants.services import credential_authenticate, credential_touch

from .batching import SubmissionBatcher, SuppressionChecks
from .protocol import AUTH_INVALID, AUTH_OK, AuthOutcome, DispatchSMTP, one_line

log = logging.getLogger(__name__)

# A session authenticates once; the credential and tenant are re-read at most this often so a
# revocation or suspension reaches long-lived sessions without a query per message.
CREDENTIAL_RECHECK_SECONDS = 30
SENDER_DOMAIN_CACHE_SECONDS = 60
TEMPORARY_FAILURE = one_line(TemporaryFailure().smtp_text)
TEMPORARY_AUTH_FAILURE = "454 4.7.0 Temporary authentication failure, try again later"
REVOKED = "535 5.7.8 Authentication credentials invalid (credential revoked)"


class SubmissionSMTP(DispatchSMTP):
    """Port 587/2525 (STARTTLS) and 465 (implicit TLS): authenticated tenants submit mail."""

    sasl_mechanisms = ("PLAIN", "LOGIN")


class SubmissionHandler:
    def __init__(self, *, db):
        self.db = db
        self.batcher = SubmissionBatcher(db=db, store_many=_store_many)
        self.suppression_checks = SuppressionChecks(db=db, are_suppressed=are_suppressed)

    async def authenticate(self, server, session, username, password):
        try:
            credential = await self.db.run(_authenticate, username, password)
        except (DatabaseError, RedisError):
            log.exception("SMTP AUTH: credential lookup failed")
            return AuthOutcome(False, TEMPORARY_AUTH_FAILURE, counts_as_failure=False)
        if credential is None:
            return AuthOutcome(False, AUTH_INVALID)
        if credential.is_revoked:
            return AuthOutcome(False, REVOKED)
        if not credential.tenant.is_active:
            return AuthOutcome(False, one_line(TenantNotActive().smtp_text), counts_as_failure=False)
        session.credential = credential
        session.tenant = credential.tenant
        return AuthOutcome(True, AUTH_OK)

    async def check_sender(self, server, session, address):
        if not address:
            return "553 5.1.7 The null sender is not accepted for submission"
        refusal = await self._recheck_credential(server, session)
        if refusal:
            return refusal
        domain = address.rpartition("@")[2]
        cached = _fresh_sender_answer(session, domain)
        if cached is None:
            try:
                found = await self.db.run(sending_domain_for, tenant=session.tenant, address=address)
            except DatabaseError:
                log.exception("SMTP MAIL: sender domain lookup failed")
                return TEMPORARY_FAILURE
            cached = session.sender_domains[domain] = (found, time.monotonic())
        if cached[0] is None:
            return f"550 5.7.1 Sender domain {domain} is not a verified domain of this account"
        return None

    async def check_recipient(self, server, session, envelope, address):
        """Suppressed addresses are refused here, so each RCPT gets its own answer."""
        try:
            suppressed = await self.suppression_checks.is_suppressed(tenant=session.tenant, email=address)
        except DatabaseError:
            log.exception("SMTP RCPT: suppression lookup failed")
            return TEMPORARY_FAILURE
        if suppressed:
            return "550 5.1.1 Recipient is on this account's suppression list"
        return None

    async def deliver(self, server, session, envelope):
        try:
            result = await self.batcher.submit(
                tenant=session.tenant,
                credential=session.credential,
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                raw=envelope.content,
                # What this session answered at MAIL and RCPT is not looked up again (perf).
                sender_domain=_checked_sender_domain(session, envelope.mail_from),
                recipients_checked=True,
            )
        except DispatchError as error:
            return error.smtp_text
        except (DatabaseError, RedisError):
            log.exception("SMTP DATA: submission failed on a dependency")
            return TEMPORARY_FAILURE
        return f"250 2.0.0 OK queued as <{result.message.message_id}>"

    async def _recheck_credential(self, server, session):
        if time.monotonic() - session.auth_checked_at < CREDENTIAL_RECHECK_SECONDS:
            return None
        try:
            credential = await self.db.run(_reload_credential, session.credential.pk)
        except DatabaseError:
            log.exception("SMTP MAIL: credential re-check failed")
            return TEMPORARY_FAILURE
        if credential is None or credential.is_revoked:
            session.authenticated = False
            return "530 5.7.0 Credential revoked, authenticate again"
        if not credential.tenant.is_active:
            return one_line(TenantNotActive().smtp_text)
        session.credential, session.tenant = credential, credential.tenant
        session.auth_checked_at = time.monotonic()
        return None


def _store_many(tenant, credential, items):
    return submit_raw_many(tenant=tenant, items=items, credential=credential)


def _fresh_sender_answer(session, domain):
    """(usable Domain or None, checked at) of this session's MAIL check of `domain`, while it is
    fresh (SENDER_DOMAIN_CACHE_SECONDS); None when there is no fresh answer."""
    cached = session.sender_domains.get(domain)
    if cached is None or time.monotonic() - cached[1] > SENDER_DOMAIN_CACHE_SECONDS:
        return None
    return cached


def _checked_sender_domain(session, mail_from):
    """The Domain that MAIL FROM was found usable on, while that answer is fresh, else None."""
    cached = _fresh_sender_answer(session, mail_from.rpartition("@")[2])
    return cached[0] if cached else None


def _authenticate(username, password):
    credential = credential_authenticate(username=username, password=password)
    if credential is not None and not credential.is_revoked:
        credential_touch(credential)
    return credential


def _reload_credential(credential_id):
    return Credential.objects.select_related("tenant", "tenant__plan").filter(pk=credential_id).first()
