"""The inbound MX role (DISPATCH_SMTP_INBOUND_PORT, normally 25): where bounces (DSNs) and
complaint reports (ARF) for our return-path domains arrive.

No AUTH, any sender (reports come from the null sender `<>`). RCPT is accepted only for our VERP
return paths and `fbl@<return-path domain>` of a known domain (sending.bounces.ingest.address_accepted);
everything else gets 550 5.7.1 — this is never a relay. DATA is stored (committed) before the 250,
and processing is queued by id afterwards; a report whose task is lost is picked up by the sweeper."""
import asyncio
import logging

from django.db import DatabaseError

from sending.bounces.ingest import address_accepted, reports_enqueue, reports_store

from .protocol import DispatchSMTP

log = logging.getLogger(__name__)

TEMPORARY_FAILURE = "451 4.3.0 Temporary failure, try again later"
NOT_OURS = "550 5.7.1 Relaying denied: this server accepts mail only for its own return-path addresses"


class InboundSMTP(DispatchSMTP):
    """Port 25: STARTTLS offered, no AUTH."""

    sasl_mechanisms = ()


class InboundHandler:
    def __init__(self, *, db):
        self.db = db
        self._background = set()

    async def check_sender(self, server, session, address):
        return None  # DSNs use the null sender; anybody may report to us

    async def check_recipient(self, server, session, envelope, address):
        try:
            accepted = await self.db.run(address_accepted, address)
        except DatabaseError:
            log.exception("inbound RCPT: address lookup failed")
            return TEMPORARY_FAILURE
        return None if accepted else NOT_OURS

    async def deliver(self, server, session, envelope):
        peer = session.peer
        try:
            report_ids = await self.db.run(
                reports_store,
                envelope_from=envelope.mail_from or "",
                rcpt_tos=list(envelope.rcpt_tos),
                raw=envelope.content,
                remote_ip=str(peer[0]) if isinstance(peer, tuple) else "",
            )
        except DatabaseError:
            log.exception("inbound DATA: storing the report failed")
            return TEMPORARY_FAILURE
        # The rows are committed; queue processing once the 250 is on its way (the broker is not
        # what makes the report durable, the sweeper processes anything left behind).
        task = asyncio.get_running_loop().create_task(self.db.run(reports_enqueue, report_ids))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return f"250 2.0.0 OK report accepted ({len(report_ids)})"
