"""A small synchronous SMTP client for relaying to MX hosts (RFC 5321).

Why not smtplib: it cannot pipeline (RFC 2920) and hides per-stage timeouts. This client:
EHLO (HELO fallback), opportunistic or required STARTTLS, PIPELINING when offered, SIZE,
8BITMIME, one connection reused for many transactions (RSET between), per-recipient RCPT
replies, and the RFC 5321 §4.5.3.2 timeouts per stage (from settings).

Errors: a reply is data (SMTPReply); a broken connection raises SMTPConnectionError, with
`replies_received` telling the caller whether the server saw anything of this transaction.
"""
import re
import socket
import ssl
from dataclasses import dataclass, field

from django.conf import settings

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")
_MAX_LINE = 8192


@dataclass(frozen=True)
class SMTPReply:
    code: int
    text: str  # without the enhanced status code
    enhanced: str = ""

    @property
    def positive(self):
        return 200 <= self.code < 400

    @property
    def transient(self):
        return 400 <= self.code < 500

    @property
    def permanent(self):
        return self.code >= 500

    def __str__(self):
        return f"{self.code} {self.enhanced + ' ' if self.enhanced else ''}{self.text}".strip()


class SMTPConnectionError(Exception):
    """The connection failed or broke (timeout, reset, TLS failure, garbage)."""

    def __init__(self, message, *, replies_received=0):
        super().__init__(message)
        self.replies_received = replies_received


class SMTPGreetingRefused(Exception):
    """The server answered the connection or EHLO/HELO with a failure (e.g. 421, 554)."""

    def __init__(self, reply):
        super().__init__(str(reply))
        self.reply = reply


class TLSRequiredError(Exception):
    """STARTTLS is required for this destination and was not offered or failed."""


@dataclass
class Timeouts:
    connect: float
    greeting: float
    command: float
    data_init: float
    data_block: float
    data_end: float

    @classmethod
    def from_settings(cls):
        return cls(
            connect=settings.DISPATCH_OUTBOUND_CONNECT_TIMEOUT,
            greeting=settings.DISPATCH_OUTBOUND_GREETING_TIMEOUT,
            command=settings.DISPATCH_OUTBOUND_COMMAND_TIMEOUT,
            data_init=settings.DISPATCH_OUTBOUND_DATA_INIT_TIMEOUT,
            data_block=settings.DISPATCH_OUTBOUND_DATA_BLOCK_TIMEOUT,
            data_end=settings.DISPATCH_OUTBOUND_DATA_END_TIMEOUT,
        )


@dataclass
class TransactionResult:
    """Replies for one MAIL transaction: rcpt -> reply (the final reply for accepted ones)."""

    recipients: dict = field(default_factory=dict)


def parse_reply(lines):
    code = int(lines[-1][:3])
    texts = [line[4:] for line in lines]
    enhanced = ""
    match = _ENHANCED.match(texts[0]) if texts else None
    if match and match.group(1) == str(code)[0]:
        enhanced = match.group(0)
        texts = [_ENHANCED.sub("", text, count=1).lstrip() for text in texts]
    return SMTPReply(code=code, text=" ".join(t for t in texts if t)[:1000], enhanced=enhanced)


def dot_stuff(data: bytes) -> bytes:
    """Transparency (RFC 5321 §4.5.2) and the terminating <CRLF>.<CRLF>."""
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..") + b".\r\n"


def _ssl_context():
    # Opportunistic TLS between MTAs does not verify certificates (RFC 7435): an MX certificate
    # rarely names the MX host, and refusing it would send the message in clear instead.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class SMTPConnection:
    def __init__(self, *, address, port, server_name, helo_name=None, require_tls=False, timeouts=None):
        self.address = address
        self.port = port
        self.server_name = server_name
        self.helo_name = helo_name or settings.DISPATCH_HOSTNAME
        self.require_tls = require_tls
        self.timeouts = timeouts or Timeouts.from_settings()
        self.sock = None
        self.extensions = {}
        self.tls = False
        self.transactions = 0
        self.remote_ip = ""
        self._buffer = b""

    # --- connection ---------------------------------------------------------------------
    def connect(self):
        try:
            self.sock = socket.create_connection((self.address, self.port), timeout=self.timeouts.connect)
        except OSError as exc:
            raise SMTPConnectionError(f"connect to {self.address}:{self.port} failed: {exc}") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.remote_ip = self.sock.getpeername()[0]
        greeting = self._read_reply(self.timeouts.greeting)
        if greeting.code != 220:
            self.close()
            raise SMTPGreetingRefused(greeting)
        self._hello()
        if "starttls" in self.extensions:
            self._starttls()
        elif self.require_tls:
            self.quit()
            raise TLSRequiredError(f"{self.server_name} does not offer STARTTLS, which is required for this domain")
        return self

    def _hello(self):
        reply = self._command(f"EHLO {self.helo_name}", self.timeouts.command)
        if reply.code == 250:
            self.extensions = self._parse_extensions(reply)
            return
        reply = self._command(f"HELO {self.helo_name}", self.timeouts.command)
        if reply.code != 250:
            self.close()
            raise SMTPGreetingRefused(reply)
        self.extensions = {}

    def _parse_extensions(self, reply):
        extensions = {}
        for line in self._last_lines[1:]:
            keyword, _, params = line[4:].strip().partition(" ")
            extensions[keyword.lower()] = params.strip()
        return extensions

    def _starttls(self):
        reply = self._command("STARTTLS", self.timeouts.command)
        if reply.code != 220:
            if self.require_tls:
                self.quit()
                raise TLSRequiredError(f"{self.server_name} refused STARTTLS: {reply}")
            return
        try:
            self.sock = _ssl_context().wrap_socket(self.sock, server_hostname=self.server_name if not _is_ip(self.server_name) else None)
        except (ssl.SSLError, OSError) as exc:
            self.close()
            if self.require_tls:
                raise TLSRequiredError(f"TLS handshake with {self.server_name} failed: {exc}") from None
            raise SMTPConnectionError(f"TLS handshake with {self.server_name} failed: {exc}") from None
        self._buffer = b""
        self.tls = True
        self._hello()  # RFC 3207: forget what was said in clear, ask again

    @property
    def max_size(self):
        try:
            return int(self.extensions.get("size", "0").split()[0] or 0)
        except (ValueError, IndexError):
            return 0

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None

    def quit(self):
        if self.sock is None:
            return
        try:
            self.sock.settimeout(5)
            self.sock.sendall(b"QUIT\r\n")
            self._read_reply(5)
        except (OSError, SMTPConnectionError):
            pass
        self.close()

    @property
    def connected(self):
        return self.sock is not None

    # --- one transaction ----------------------------------------------------------------
    def send(self, mail_from, recipients, data: bytes):
        """One MAIL transaction. Returns TransactionResult; a recipient's reply is its RCPT
        reply when refused, else the reply to the end of DATA (or DATA itself when refused)."""
        result = TransactionResult()
        limit = self.max_size
        if limit and len(data) > limit:
            refusal = SMTPReply(552, f"message of {len(data)} bytes exceeds the server's SIZE limit of {limit}", "5.3.4")
            result.recipients = {rcpt: refusal for rcpt in recipients}
            return result

        params = []
        if "size" in self.extensions:
            params.append(f"SIZE={len(data)}")
        if "8bitmime" in self.extensions and not data.isascii():
            params.append("BODY=8BITMIME")
        mail = f"MAIL FROM:<{mail_from}>" + "".join(" " + p for p in params)
        offset = 1 if self.transactions else 0
        commands = (["RSET"] if offset else []) + [mail] + [f"RCPT TO:<{rcpt}>" for rcpt in recipients] + ["DATA"]
        self.transactions += 1
        replies = []
        try:
            if "pipelining" in self.extensions:
                self._send_line("\r\n".join(commands))
                for command in commands:
                    replies.append(self._read_reply(self.timeouts.data_init if command == "DATA" else self.timeouts.command))
                    if replies[-1].code == 421:
                        break  # the server is closing: nothing more will come
            else:
                self._send_sequentially(commands, replies, offset)
            return self._finish(result, replies, offset, recipients, data)
        except SMTPConnectionError as exc:
            exc.replies_received = len(replies)
            self.close()
            raise

    def _send_sequentially(self, commands, replies, offset):
        for command in commands[: offset + 1]:  # RSET, MAIL
            replies.append(self._command(command, self.timeouts.command))
            if not replies[-1].positive:
                return
        for command in commands[offset + 1 : -1]:  # RCPT ...
            replies.append(self._command(command, self.timeouts.command))
            if replies[-1].code == 421:
                return
        if any(reply.code in (250, 251) for reply in replies[offset + 1 :]):
            replies.append(self._command("DATA", self.timeouts.data_init))

    def _finish(self, result, replies, offset, recipients, data):
        if offset and replies[0].code != 250:
            self.close()
            raise SMTPConnectionError(f"RSET refused: {replies[0]}", replies_received=0)
        closing = replies[-1] if replies[-1].code == 421 else None
        mail_reply = replies[offset] if len(replies) > offset else closing
        if not mail_reply.positive:
            result.recipients = {rcpt: mail_reply for rcpt in recipients}
            self._abort(replies[-1] if len(replies) == len(recipients) + offset + 2 else None)
            return result
        rcpt_replies = replies[offset + 1 : offset + 1 + len(recipients)]
        data_reply = replies[offset + 1 + len(recipients)] if len(replies) > offset + 1 + len(recipients) else None
        accepted = []
        for index, rcpt in enumerate(recipients):
            reply = rcpt_replies[index] if index < len(rcpt_replies) else closing
            if reply.code in (250, 251):
                accepted.append(rcpt)
            else:
                result.recipients[rcpt] = reply
        if not accepted:
            self._abort(data_reply)
            return result
        if data_reply is None or data_reply.code != 354:
            refusal = data_reply or closing or SMTPReply(451, "DATA was not accepted", "4.3.0")
            for rcpt in accepted:
                result.recipients[rcpt] = refusal
            return result
        self.sock.settimeout(self.timeouts.data_block)
        self._sendall(dot_stuff(data))
        final = self._read_reply(self.timeouts.data_end)
        for rcpt in accepted:
            result.recipients[rcpt] = final
        return result

    def _abort(self, data_reply):
        """No recipient accepted. If the server still said 354 to a pipelined DATA, end the
        empty message (RFC 2920 §3.1); the next transaction starts with RSET anyway."""
        if data_reply is not None and data_reply.code == 354:
            self._sendall(b".\r\n")
            self._read_reply(self.timeouts.data_end)

    # --- wire ---------------------------------------------------------------------------
    def _command(self, line, timeout):
        self._send_line(line)
        return self._read_reply(timeout)

    def _send_line(self, line):
        self._sendall(line.encode("utf-8") + b"\r\n")

    def _sendall(self, payload):
        if self.sock is None:
            raise SMTPConnectionError("not connected")
        try:
            self.sock.sendall(payload)
        except OSError as exc:
            self.close()
            raise SMTPConnectionError(f"send to {self.server_name} failed: {exc}") from None

    def _read_line(self, timeout):
        while b"\n" not in self._buffer:
            if len(self._buffer) > _MAX_LINE:
                self.close()
                raise SMTPConnectionError(f"{self.server_name} sent an over-long reply line")
            try:
                self.sock.settimeout(timeout)
                chunk = self.sock.recv(65536)
            except (OSError, AttributeError) as exc:
                self.close()
                kind = "timed out" if isinstance(exc, TimeoutError | socket.timeout) else f"failed: {exc}"
                raise SMTPConnectionError(f"reading from {self.server_name} {kind}") from None
            if not chunk:
                self.close()
                raise SMTPConnectionError(f"{self.server_name} closed the connection")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def _read_reply(self, timeout):
        lines = []
        while True:
            line = self._read_line(timeout)
            if len(line) < 3 or not line[:3].isdigit() or (len(line) > 3 and line[3] not in " -"):
                self.close()
                raise SMTPConnectionError(f"{self.server_name} sent a malformed reply: {line[:80]!r}")
            lines.append(line)
            if len(line) == 3 or line[3] == " ":
                break
        self._last_lines = lines
        reply = parse_reply(lines)
        if reply.code == 421:
            # Service closing: the server drops the connection after this reply.
            self.close()
        return reply


def _is_ip(value):
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in value else socket.AF_INET, value)
        return True
    except OSError:
        return False
