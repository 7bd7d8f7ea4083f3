"""The SMTP protocol as the gateway speaks it: aiosmtpd's connection and TLS plumbing, with the
commands that matter rewritten so that every reply carries an enhanced status code and the
library's known gaps (DESIGN.md §6) are closed:

- AUTH answers every failure (535 5.7.8 after a delay), counts failures per client IP and per
  account and disconnects at the limits (421 4.7.0; see authlimit.py); AUTH before TLS
  answers 538 5.7.11.
- A second STARTTLS answers 554 5.5.1; commands pipelined behind STARTTLS are discarded
  (aiosmtpd clears the plaintext buffer when TLS starts).
- DATA ends only at <CRLF>.<CRLF>; bare CR, bare LF and NUL are refused (550 5.6.0), so no
  smuggled second message can hide behind a lone LF and nothing reaches DKIM signing unclean.
- Source routes, %/! routing, address literals and over-long paths are refused (553 5.1.3).

A role (submission now; inbound MX later) is a subclass plus a handler object with the
`check_sender`, `check_recipient`, `deliver` and (with AUTH) `authenticate` coroutines."""
import asyncio
import logging
import re
import time
from base64 import b64decode
from binascii import Error as Base64Error
from dataclasses import dataclass

from aiosmtpd.smtp import MISSING, SMTP, Session, TLSSetupException, syntax

from dispatch_site.errors import DispatchError

from .addresses import AddressRefused, check_address, parse_path

log = logging.getLogger(__name__)

TIMEOUT_REPLY = "421 4.4.2 Idle timeout, closing connection"
SHUTDOWN_REPLY = "421 4.3.2 Service shutting down, try again later"
LINE_TOO_LONG = "500 5.5.2 Line too long (RFC 5321 4.5.3.1.6 allows 1,000 octets)"
BAD_LINE_ENDINGS = "550 5.6.0 Bare CR, bare LF or NUL in message; use CRLF line endings"
TOO_MUCH_DATA = "552 5.3.4 Message size exceeds fixed maximum message size"
OUT_OF_BUFFER = "452 4.3.1 Insufficient system storage, try again later"
TOO_MANY_AUTH_FAILURES = "421 4.7.0 Too many failed authentication attempts, closing connection"
TOO_MANY_ACCOUNT_FAILURES = "421 4.7.0 Too many failed authentication attempts for this account, try again later"
AUTH_OK = "235 2.7.0 Authentication successful"
AUTH_INVALID = "535 5.7.8 Authentication credentials invalid"

# Default enhanced codes (RFC 3463) for plain replies that aiosmtpd produces on its own.
_ENHANCED_DEFAULTS = {
    b"221": b"2.0.0", b"250": b"2.0.0", b"252": b"2.5.0",
    b"500": b"5.5.2", b"501": b"5.5.4", b"502": b"5.5.1", b"503": b"5.5.1", b"504": b"5.5.4",
    b"530": b"5.7.0", b"554": b"5.5.1",
}
_PLAIN_REPLY = re.compile(rb"([245]\d\d) (?![245]\.\d{1,3}\.\d{1,3}(?: |$))")
_PROGRESS_RESET_BYTES = 64 * 1024
MAX_LINE = 1000  # RFC 5321 4.5.3.1.6: 998 octets of text + CRLF


class DispatchSession(Session):
    def __init__(self, loop):
        super().__init__(loop)
        self.credential = None
        self.tenant = None
        self.auth_checked_at = 0.0
        self.sender_domains = {}  # domain -> (usable Domain or None, checked at), for this session


@dataclass(frozen=True)
class AuthOutcome:
    ok: bool
    reply: str
    counts_as_failure: bool = True


class DispatchSMTP(SMTP):
    sasl_mechanisms = ()  # roles with AUTH list theirs (and require TLS for it)

    def __init__(self, handler, *, gateway, tls_context=None, implicit_tls=False):
        self.gateway = gateway
        self.implicit_tls = implicit_tls
        self.in_data = False
        config = gateway.config
        self.max_recipients = config.max_recipients
        super().__init__(
            handler,
            data_size_limit=config.max_message_bytes,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=config.hostname,
            ident="Dispatch ESMTP",
            tls_context=None if implicit_tls else tls_context,
            timeout=config.idle_timeout,
            auth_required=bool(self.sasl_mechanisms),
            auth_require_tls=True,
            loop=asyncio.get_running_loop(),
        )

    # --- connection life cycle -------------------------------------------------------------

    @property
    def tls_active(self):
        return self.implicit_tls or self._tls_protocol is not None

    def _create_session(self):
        return DispatchSession(self.loop)

    def connection_made(self, transport):
        first = self.transport is None
        super().connection_made(transport)
        if first:
            if self.implicit_tls:
                self.session.ssl = {"ssl_object": transport.get_extra_info("ssl_object")}
            self.gateway.session_opened(self)

    def connection_lost(self, error):
        self.gateway.session_closed(self)
        super().connection_lost(error)

    async def _handle_client(self):
        refusal = self.gateway.refusal_for_new_session()
        if refusal:
            await self.push(refusal)
            self.transport.close()
            return
        await super()._handle_client()

    def _timeout_cb(self):
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(TIMEOUT_REPLY.encode() + b"\r\n")
        super()._timeout_cb()

    def close_for_shutdown(self):
        """Idle sessions go now; a session inside DATA finishes its message first."""
        if not self.in_data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(SHUTDOWN_REPLY.encode() + b"\r\n")
            self.transport.close()

    async def push(self, status):
        if isinstance(status, str):
            status = status.encode("utf-8", "replace")
        match = _PLAIN_REPLY.match(status)
        if match and match.group(1) != b"220":  # the greeting must start with our host name
            code = match.group(1)
            default = _ENHANCED_DEFAULTS.get(code, code[:1] + b".0.0")
            status = code + b" " + default + b" " + status[4:]
        await self._push_raw(status)

    async def _push_raw(self, status):
        if isinstance(status, str):
            status = status.encode("utf-8", "replace")
        self._writer.write(status + b"\r\n")
        await self._writer.drain()

    async def handle_exception(self, error):
        if isinstance(error, TLSSetupException):  # aiosmtpd closes the connection itself
            log.info("SMTP %r: TLS handshake failed: %r", self.session.peer, error.__cause__)
            return "454 4.7.0 TLS handshake failed"
        if isinstance(error, DispatchError):
            return one_line(error.smtp_text)
        log.exception("SMTP session %r: unexpected error", self.session.peer if self.session else None)
        return "451 4.3.0 Internal error, try again later"

    # --- greeting and TLS ------------------------------------------------------------------

    async def check_helo_needed(self, helo="HELO"):
        if not self.session.host_name:
            await self.push(f"503 5.5.1 Error: send {helo} first")
            return True
        return False

    @syntax("HELO hostname")
    async def smtp_HELO(self, hostname):
        if not hostname:
            await self.push("501 5.5.4 Syntax: HELO hostname")
            return
        self._set_rset_state()
        self.session.extended_smtp = False
        self.session.host_name = hostname
        await self._push_raw(f"250 {self.hostname}")

    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname):
        if not hostname:
            await self.push("501 5.5.4 Syntax: EHLO hostname")
            return
        self._set_rset_state()
        self.session.extended_smtp = True
        self.session.host_name = hostname
        keywords = [self.hostname, f"SIZE {self.data_size_limit}", "8BITMIME", "SMTPUTF8", "PIPELINING",
                    "ENHANCEDSTATUSCODES"]
        if self.tls_context and not self.tls_active:
            keywords.append("STARTTLS")
        if self.sasl_mechanisms and self.tls_active:
            keywords.append("AUTH " + " ".join(self.sasl_mechanisms))
        lines = [f"250-{k}" for k in keywords[:-1]] + [f"250 {keywords[-1]}"]
        await self._push_raw("\r\n".join(lines))

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg):
        if arg:
            await self.push("501 5.5.4 Syntax: STARTTLS")
        elif self.tls_active:
            await self.push("554 5.5.1 TLS already active")
        elif not self.tls_context:
            await self.push("454 4.7.0 TLS not available")
        else:
            await super().smtp_STARTTLS(arg)
            if self.session.ssl is None:
                # The handshake was aborted (idle timeout, reset) before it completed: asyncio
                # then reports success to the waiter and never calls connection_lost, which
                # would leave this session counted and its reader waiting forever.
                self.connection_lost(None)

    # --- AUTH --------------------------------------------------------------------------------

    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg):
        if not self.sasl_mechanisms:
            await self.push("502 5.5.1 AUTH not available on this service")
            return
        if await self.check_helo_needed("EHLO"):
            return
        if not self.session.extended_smtp:
            await self.push("503 5.5.1 Error: send EHLO first")
            return
        if not self.tls_active:
            await self.push("538 5.7.11 Encryption required for requested authentication mechanism")
            return
        if self.session.authenticated:
            await self.push("503 5.5.1 Already authenticated")
            return
        args = (arg or "").split()
        if not args or len(args) > 2:
            await self.push("501 5.5.4 Syntax: AUTH mechanism [initial-response]")
            return
        mechanism = args[0].upper()
        if mechanism not in self.sasl_mechanisms:
            await self.push("504 5.5.4 Unrecognized authentication type")
            return
        ip = self._peer_ip()
        limiter = self.gateway.auth_limiter
        if await limiter.ip_blocked(ip):
            await self._refuse_and_close(TOO_MANY_AUTH_FAILURES)
            return
        credentials = await self._read_credentials(mechanism, args[1] if len(args) == 2 else None)
        if credentials is None:
            return
        username, password = credentials
        if await limiter.account_blocked(username, ip):
            log.warning("SMTP AUTH: account over its failure limit, refused from %s", ip)
            await self._refuse_and_close(TOO_MANY_ACCOUNT_FAILURES)
            return
        outcome = await self.event_handler.authenticate(self, self.session, username, password)
        if outcome.ok:
            self.session.authenticated = True
            self.session.auth_checked_at = time.monotonic()
            await limiter.record_success(username, ip)
            await self.push(outcome.reply)
            return
        if outcome.counts_as_failure:
            failures = await limiter.record_failure(ip, username)
            await asyncio.sleep(self.gateway.config.auth_failure_delay)
            if failures >= limiter.limit:
                log.warning("SMTP AUTH: %s reached %d failures, disconnecting", ip, failures)
                await self._refuse_and_close(TOO_MANY_AUTH_FAILURES)
                return
        await self.push(outcome.reply)

    async def _read_credentials(self, mechanism, initial):
        """(username, password) as text, or None after a protocol error reply was sent.
        Undecodable credentials come back as empty strings, which never authenticate."""
        if mechanism == "PLAIN":
            blob = await self._auth_response(initial, "")
            if blob is None:
                return None
            parts = blob.split(b"\0")
            if len(parts) != 3:
                await self.push("501 5.5.2 Cannot split AUTH PLAIN response")
                return None
            authzid, username, password = parts
            if authzid and authzid != username:
                return "", ""  # acting as another identity is not supported
        else:
            username = await self._auth_response(initial, "Username:")
            if username is None:
                return None
            password = await self._auth_response(None, "Password:")
            if password is None:
                return None
        try:
            return username.decode("utf-8"), password.decode("utf-8")
        except UnicodeDecodeError:
            return "", ""

    async def _auth_response(self, initial, challenge):
        if initial is not None:
            if initial == "=":  # RFC 4954: an empty initial response
                return b""
            try:
                return b64decode(initial.encode("ascii", "surrogateescape"), validate=True)
            except (Base64Error, ValueError):
                await self.push("501 5.5.2 Cannot decode base64")
                return None
        try:
            response = await self.challenge_auth(challenge)
        except ValueError:
            await self.push(LINE_TOO_LONG)
            return None
        return None if response is MISSING else response

    async def _refuse_and_close(self, reply):
        await self.push(reply)
        self._handler_coroutine.cancel()
        self.transport.close()

    def _peer_ip(self):
        peer = self.session.peer
        return str(peer[0]) if isinstance(peer, tuple) else str(peer)

    # --- the mail transaction ------------------------------------------------------------------

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg):
        if await self.check_helo_needed() or await self.check_auth_needed("MAIL"):
            return
        if self.envelope.mail_from is not None:
            await self.push("503 5.5.1 Error: nested MAIL command")
            return
        arg = self._strip_command_keyword("FROM:", arg or "")
        if arg is None:
            await self.push("501 5.5.4 Syntax: MAIL FROM:<address> [parameters]")
            return
        try:
            path = parse_path(arg)
            params = dict(path.params)
            smtputf8 = params.pop("SMTPUTF8", False)
            body = params.pop("BODY", "7BIT")
            size = params.pop("SIZE", None)
            params.pop("AUTH", None)  # RFC 4954 MAIL AUTH=: accepted, never trusted
            if smtputf8 not in (True, False):
                raise AddressRefused("501 5.5.4 SMTPUTF8 takes no value")
            if body is True or body.upper() not in ("7BIT", "8BITMIME"):
                raise AddressRefused("501 5.5.4 BODY must be 7BIT or 8BITMIME")
            if size is not None:
                if size is True or not size.isdigit():
                    raise AddressRefused("501 5.5.4 SIZE must be a number")
                if int(size) > self.data_size_limit:
                    raise AddressRefused(TOO_MUCH_DATA)
            if params:
                raise AddressRefused("555 5.5.4 Unsupported MAIL parameter")
            address = check_address(path.address, smtputf8=smtputf8) if path.address else ""
        except AddressRefused as refused:
            await self.push(refused.reply)
            return
        refusal = await self.event_handler.check_sender(self, self.session, address)
        if refusal:
            await self.push(refusal)
            return
        self.envelope.mail_from = address
        self.envelope.smtp_utf8 = smtputf8
        self.envelope.mail_options = arg.split()[1:]
        await self.push("250 2.1.0 Sender OK")

    @syntax("RCPT TO: <address>")
    async def smtp_RCPT(self, arg):
        if await self.check_helo_needed() or await self.check_auth_needed("RCPT"):
            return
        if self.envelope.mail_from is None:
            await self.push("503 5.5.1 Error: need MAIL command")
            return
        arg = self._strip_command_keyword("TO:", arg or "")
        if arg is None:
            await self.push("501 5.5.4 Syntax: RCPT TO:<address>")
            return
        try:
            path = parse_path(arg)
            if path.params:
                raise AddressRefused("555 5.5.4 Unsupported RCPT parameter")
            if not path.address:
                raise AddressRefused("553 5.1.3 A recipient address is required")
            address = check_address(path.address, smtputf8=self.envelope.smtp_utf8)
        except AddressRefused as refused:
            await self.push(refused.reply)
            return
        if address.lower() in (r.lower() for r in self.envelope.rcpt_tos):
            await self.push("250 2.1.5 Recipient OK (duplicate)")
            return
        if len(self.envelope.rcpt_tos) >= self.max_recipients:
            await self.push(f"452 4.5.3 Too many recipients (at most {self.max_recipients} per message)")
            return
        refusal = await self.event_handler.check_recipient(self, self.session, self.envelope, address)
        if refusal:
            await self.push(refusal)
            return
        self.envelope.rcpt_tos.append(address)
        await self.push("250 2.1.5 Recipient OK")

    @syntax("DATA")
    async def smtp_DATA(self, arg):
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        if self.envelope.mail_from is None:
            await self.push("503 5.5.1 Error: need MAIL command")
            return
        if not self.envelope.rcpt_tos:
            await self.push("554 5.5.1 No valid recipients")
            return
        self.in_data = True
        try:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            content, problem = await self._receive_data()
            if content is None and problem is None:
                return  # the client went away mid-DATA: nothing is kept
            if problem:
                await self.push(problem)
                return
            self.envelope.content = self.envelope.original_content = content
            reply = await self.event_handler.deliver(self, self.session, self.envelope)
            await self.push(one_line(reply))
        finally:
            self.in_data = False
            self._set_post_data_state()
        if self.gateway.draining:
            await self._refuse_and_close(SHUTDOWN_REPLY)

    async def _receive_data(self):
        """Read up to the <CRLF>.<CRLF> terminator. Returns (content, None), (None, reply) for a
        refused message (the whole message is still read, RFC 5321 4.2.5) or (None, None) when
        the client disconnected."""
        limit = self.data_size_limit
        gateway = self.gateway
        lines = []
        size = last_reset = held = 0
        problem = None
        continuing = False  # the previous chunk was the head of an over-long line
        reader = self._reader
        try:
            while True:
                try:
                    chunk = await reader.readuntil(b"\r\n")
                    complete = True
                except asyncio.LimitOverrunError as overrun:
                    chunk = await reader.read(overrun.consumed)
                    complete = False
                    problem = problem or LINE_TOO_LONG
                except asyncio.IncompleteReadError:
                    return None, None
                if complete and not continuing and chunk == b".\r\n":
                    break
                size += len(chunk)
                if size - last_reset >= _PROGRESS_RESET_BYTES:  # slow but moving uploads may go on
                    self._reset_timeout()
                    last_reset = size
                if problem is None:
                    line = chunk[1:] if chunk[:1] == b"." else chunk  # undo dot-stuffing
                    if size > limit:
                        problem = TOO_MUCH_DATA
                    elif len(line) > MAX_LINE:
                        problem = LINE_TOO_LONG
                    else:
                        lines.append(line)
                        held += len(line)
                        gateway.buffered_bytes += len(line)
                        if gateway.buffered_bytes > gateway.config.data_buffer_limit:
                            problem = OUT_OF_BUFFER
                    if problem:
                        lines = []
                        gateway.buffered_bytes -= held
                        held = 0
                continuing = not complete
        finally:
            gateway.buffered_bytes -= held
        if problem:
            return None, problem
        content = b"".join(lines)
        # Every kept line ends in exactly one CRLF, so any other CR or LF is a bare one.
        if content.count(b"\n") != len(lines) or content.count(b"\r") != len(lines) or b"\0" in content:
            return None, BAD_LINE_ENDINGS
        return content, None

    # --- the rest ---------------------------------------------------------------------------------

    @syntax("VRFY <address>")
    async def smtp_VRFY(self, arg):
        await self.push("502 5.5.1 VRFY not supported")

    async def smtp_EXPN(self, arg):
        await self.push("502 5.5.1 EXPN not supported")


def one_line(reply):
    """Replies built from messages must stay one line (no injected CR/LF)."""
    return " ".join(str(reply).splitlines())[:900]
