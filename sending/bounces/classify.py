"""Classify one SMTP failure (reply code, enhanced status, text) into a bounce class and a disposition.

Order of evidence: the enhanced status code (RFC 3463 / RFC 5248) when it is specific, then the
reply-text wording of the big mailbox providers and MTAs, then the basic reply code. Text that says
"blocked / spam / policy" vetoes a recipient-level class even when the code says 5.1.1: many
providers answer a reputation block with "550 5.1.1" or "user unknown" wording wrapped around a
block notice, and suppressing on those loses good addresses.

Disposition: "hard" (suppress the address) only when the class says the *recipient address itself*
is bad and the failure is permanent; everything else is "soft".
"""
from __future__ import annotations

import re
from dataclasses import dataclass

INVALID_RECIPIENT = "InvalidRecipient"
BAD_DOMAIN = "BadDomain"
INACTIVE_MAILBOX = "InactiveMailbox"
INVALID_MAILBOX = "InvalidMailbox"
NO_MAILBOX = "NoMailbox"
QUOTA_ISSUES = "QuotaIssues"
SPAM_BLOCK = "SpamBlock"
SPAM_CONTENT = "SpamContent"
POLICY_RELATED = "PolicyRelated"
AUTHENTICATION_FAILED = "AuthenticationFailed"
MESSAGE_EXPIRED = "MessageExpired"
ROUTING_ERRORS = "RoutingErrors"
DNS_FAILURE = "DNSFailure"
NO_ANSWER_FROM_HOST = "NoAnswerFromHost"
BAD_CONNECTION = "BadConnection"
PROTOCOL_ERRORS = "ProtocolErrors"
TRANSIENT_FAILURE = "TransientFailure"
VIRUS_RELATED = "VirusRelated"
RELAY_DENIED = "RelayDenied"
INVALID_SENDER = "InvalidSender"
CONTENT_RELATED = "ContentRelated"
UNCATEGORIZED = "Uncategorized"

BOUNCE_CLASSES = (
    INVALID_RECIPIENT, BAD_DOMAIN, INACTIVE_MAILBOX, INVALID_MAILBOX, NO_MAILBOX, QUOTA_ISSUES,
    SPAM_BLOCK, SPAM_CONTENT, POLICY_RELATED, AUTHENTICATION_FAILED, MESSAGE_EXPIRED, ROUTING_ERRORS,
    DNS_FAILURE, NO_ANSWER_FROM_HOST, BAD_CONNECTION, PROTOCOL_ERRORS, TRANSIENT_FAILURE, VIRUS_RELATED,
    RELAY_DENIED, INVALID_SENDER, CONTENT_RELATED, UNCATEGORIZED,
)

# The recipient address itself is bad: a permanent failure of one of these is suppressed.
ADDRESS_CLASSES = frozenset({INVALID_RECIPIENT, BAD_DOMAIN, INVALID_MAILBOX, NO_MAILBOX})
# Classes whose wording overrides a recipient-level status code (the 5.1.1-wrapped block).
_VETO_CLASSES = frozenset({
    SPAM_BLOCK, SPAM_CONTENT, POLICY_RELATED, VIRUS_RELATED, RELAY_DENIED, AUTHENTICATION_FAILED,
    INVALID_SENDER, QUOTA_ISSUES, INACTIVE_MAILBOX, TRANSIENT_FAILURE, CONTENT_RELATED,
})

HARD = "hard"
SOFT = "soft"

MAX_TEXT = 4000  # classify on the first few KB only: replies longer than this are noise


@dataclass(frozen=True, slots=True)
class Classification:
    bounce_class: str
    disposition: str  # "hard" | "soft"


# --- enhanced status codes ------------------------------------------------------------------
# (subject, detail) -> (class, strong). A strong code decides on its own; a weak one (an
# ambiguous code such as x.7.1 "delivery not authorized") only when the text says nothing.
_ENHANCED = {
    (1, 0): (INVALID_RECIPIENT, False), (1, 1): (INVALID_RECIPIENT, True), (1, 2): (BAD_DOMAIN, True),
    (1, 3): (INVALID_MAILBOX, True), (1, 4): (INVALID_RECIPIENT, False), (1, 5): (UNCATEGORIZED, False),
    (1, 6): (INACTIVE_MAILBOX, True), (1, 7): (INVALID_SENDER, True), (1, 8): (INVALID_SENDER, True),
    (1, 9): (ROUTING_ERRORS, False), (1, 10): (BAD_DOMAIN, True),
    (2, 0): (UNCATEGORIZED, False), (2, 1): (INACTIVE_MAILBOX, False), (2, 2): (QUOTA_ISSUES, True),
    (2, 3): (QUOTA_ISSUES, True), (2, 4): (ROUTING_ERRORS, False),
    (3, 0): (TRANSIENT_FAILURE, False), (3, 1): (TRANSIENT_FAILURE, False), (3, 2): (TRANSIENT_FAILURE, False),
    (3, 3): (CONTENT_RELATED, False), (3, 4): (QUOTA_ISSUES, True), (3, 5): (TRANSIENT_FAILURE, False),
    (4, 0): (ROUTING_ERRORS, False), (4, 1): (NO_ANSWER_FROM_HOST, False), (4, 2): (BAD_CONNECTION, False),
    (4, 3): (DNS_FAILURE, False), (4, 4): (BAD_DOMAIN, False), (4, 5): (TRANSIENT_FAILURE, False),
    (4, 6): (ROUTING_ERRORS, True), (4, 7): (MESSAGE_EXPIRED, True),
    (5, 0): (PROTOCOL_ERRORS, False), (5, 1): (PROTOCOL_ERRORS, False), (5, 2): (PROTOCOL_ERRORS, False),
    (5, 3): (TRANSIENT_FAILURE, False), (5, 4): (PROTOCOL_ERRORS, False), (5, 5): (PROTOCOL_ERRORS, False),
    (5, 6): (PROTOCOL_ERRORS, False),
    (6, 0): (CONTENT_RELATED, False), (6, 1): (CONTENT_RELATED, False), (6, 2): (CONTENT_RELATED, False),
    (6, 3): (CONTENT_RELATED, False), (6, 4): (CONTENT_RELATED, False), (6, 5): (CONTENT_RELATED, False),
    (7, 0): (POLICY_RELATED, False), (7, 1): (SPAM_BLOCK, False), (7, 2): (POLICY_RELATED, False),
    (7, 3): (POLICY_RELATED, False), (7, 4): (AUTHENTICATION_FAILED, False),
    (7, 5): (AUTHENTICATION_FAILED, True), (7, 6): (AUTHENTICATION_FAILED, True),
    (7, 7): (CONTENT_RELATED, False), (7, 8): (AUTHENTICATION_FAILED, True),
    (7, 9): (AUTHENTICATION_FAILED, False), (7, 10): (AUTHENTICATION_FAILED, True),
    (7, 11): (AUTHENTICATION_FAILED, True), (7, 12): (AUTHENTICATION_FAILED, True),
    (7, 13): (INACTIVE_MAILBOX, True), (7, 14): (POLICY_RELATED, True), (7, 15): (AUTHENTICATION_FAILED, True),
    (7, 16): (AUTHENTICATION_FAILED, True), (7, 17): (INACTIVE_MAILBOX, True), (7, 18): (INACTIVE_MAILBOX, True),
    (7, 19): (AUTHENTICATION_FAILED, True), (7, 20): (AUTHENTICATION_FAILED, True),
    (7, 21): (AUTHENTICATION_FAILED, True), (7, 22): (AUTHENTICATION_FAILED, True),
    (7, 23): (AUTHENTICATION_FAILED, True), (7, 24): (AUTHENTICATION_FAILED, True),
    (7, 25): (AUTHENTICATION_FAILED, True), (7, 26): (AUTHENTICATION_FAILED, True),
    (7, 27): (INVALID_SENDER, False), (7, 28): (SPAM_BLOCK, True), (7, 29): (AUTHENTICATION_FAILED, True),
    (7, 30): (AUTHENTICATION_FAILED, True),
}

ENHANCED_RE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d])")


def parse_enhanced(value: str | None, limit: int = 200) -> tuple[int, int, int] | None:
    """The first RFC 3463 code (class.subject.detail) in the first `limit` characters of value."""
    if not value:
        return None
    match = ENHANCED_RE.search(value[:limit])
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


# --- reply text ----------------------------------------------------------------------------
# Ordered: the first rule that matches wins, so the "this is a block" wording comes before the
# "user unknown" wording it is often wrapped around. Patterns are bounded (no nested repeats).
def _rules(*pairs):
    # Matched against lower-cased text: case-sensitive patterns keep the regex engine's fast paths.
    return tuple((cls, re.compile(pattern)) for cls, pattern in pairs)


_W = r"[^\n]{0,80}?"  # a short gap within one line

# Wording specific enough to beat any status code (providers that misuse codes, local mailers).
_DECISIVE_RULES = _rules(
    # Local delivery agent failures (procmail, a pipe): the mailer broke, not the address.
    (UNCATEGORIZED, r"command output:|command died with status|couldn't create .{0,80}/spool|mailer error"
                    r"|local delivery failed|local mailer"),
    # Microsoft 365: the recipient is not in the tenant's directory (sent as 5.1.10 or 5.4.1 too);
    # Yahoo's unknown user, which pipelining MTAs report after DATA.
    (INVALID_RECIPIENT, r"5\.4\.1 .{0,120}recipient address rejected: access denied|access denied\. as\(201806281\)"
                        r"|resolver\.adr\.recipnotfound|recipientnotfound|this user doesn't have an? \S{1,60} account"),
    (CONTENT_RELATED, r"rfc ?(?:2822|5322|822)|not (?:rfc )?compliant|duplicate header|multiple \S{1,30} headers"
                      r"|multiple (?:\d+ )?addresses in \S{1,30} header"),
    (POLICY_RELATED, r"content presents a potential security issue|not accepted for policy reasons|policy violation"
                     # au/ezweb answers a filtered message with this odd "user unknown" after DATA
                     r"|\b550:? : user unknown"),
    (TRANSIENT_FAILURE, r"frequency limited|too many (?:connections|concurrent|sessions)|connection rate limit"),
    (INACTIVE_MAILBOX, r"recipient(?:'s)? account is (?:blocked|disabled|suspended|inactive)"),
    (INVALID_SENDER, r"(?:not have|no) permission to post|sender address rejected"),
    (AUTHENTICATION_FAILED, r"turn on smtp authentication|mismatches client ip|ip name lookup failed"),
    (NO_ANSWER_FROM_HOST, r"did not accept our requests to connect"),
)

_TEXT_RULES = _rules(
    (VIRUS_RELATED, r"\bvirus\b|\bmalware\b|infected|malicious (?:content|attachment|payload)|trojan"),
    (RELAY_DENIED, r"relay(?:ing)? (?:access )?(?:denied|not permitted|not allowed|prohibited)"
                   r"|unable to relay|not (?:permitted|allowed|authori[sz]ed) to relay|relaying (?:mail )?(?:to \S+ )?(?:is )?not"
                   r"|we do not relay|no relaying|not a gateway|relay not permitted"),
    (SPAM_CONTENT, r"spam (?:content|detected|message)|(?:detected|identified|classified|categori[sz]ed|flagged) as (?:spam|bulk|junk)"
                   r"|(?:looks|appears) (?:like|to be) (?:spam|unsolicited)|message (?:content )?(?:was )?(?:rejected|refused) as spam"
                   r"|content (?:rejected|filter)|likely (?:unsolicited|spam)|\bube\b|spam score|high spam|spam signature"
                   r"|message (?:looks|is) suspicious|spam classification|flagged as spam|blacklisted url|url in (?:the )?message|bulk mail|unsolicited (?:mail|bulk|commercial)"),
    (AUTHENTICATION_FAILED, r"\bspf\b|\bdkim\b|\bdmarc\b|sender policy framework|domainkeys"
                            r"|reverse dns|\bptr\b|rdns|reverse (?:lookup|hostname)"
                            r"|unverifi(?:e|a)ble sending ip|(?:not|un)authenticated|authentication (?:required|failed|failure)"
                            r"|tls (?:is )?required|must (?:use|issue a) starttls|encryption required|requires? (?:a )?secure connection"
                            r"|does not have a ptr|no ptr record|hostname (?:does not|doesn't) resolve"),
    (SPAM_BLOCK, r"black ?list|block ?list|\bblocked\b|denylist|deny list|banned|spamhaus|spamcop|sorbs|barracuda ?central|\brbl\b|\bdnsbl\b"
                 r"|reputation|poor sender|(?<!not )listed (?:at|in|on|by)|\bspam\b|too much (?:spam|mail)|abuse"
                 r"|client host (?:\S+ )?rejected|(?:your|sending|connecting) ip (?:address )?(?:\S+ )?(?:has been |is )?(?:rejected|refused|not allowed|temporarily deferred)"
                 r"|refused by (?:mx|dnsbl|antispam)|mail from \S+ (?:refused|rejected)|access denied|sender (?:ip )?blocked"
                 r"|temporarily deferred due to|rate limited due to|suspicious activity|\b(?:rp|sc|dy|rl)-00\d"),
    (QUOTA_ISSUES, r"(?:mail ?box|mail folder|inbox|account|user|disk|storage)" + _W + r"(?:is |has )?(?:full|over ?quota|exceed)"
                   r"|over ?quota|quota (?:exceeded|exceed|full|violation)|exceeded (?:storage|the quota|its quota|quota)"
                   r"|insufficient (?:system )?storage|not enough (?:disk )?space|no space left|mailbox size limit"
                   r"|message (?:is )?(?:too (?:big|large)|size exceeds)|size (?:limit|exceeds)|exceeds (?:the )?(?:maximum|max|size)"
                   r"|too many messages (?:in|on) (?:the )?(?:mailbox|account)|(?:out of|exceeded) (?:\S+ )?storage"),
    (INACTIVE_MAILBOX, r"account (?:has been |is )?(?:disabled|suspended|deactivated|inactive|locked|blocked|frozen|expired|closed|terminated)"
                       r"|(?:mailbox|user|recipient|address) (?:is |has been )?(?:disabled|suspended|deactivated|inactive|inactivated|locked|frozen)"
                       r"|disabled (?:account|mailbox|user)|inactive (?:account|mailbox|user)|email account that you tried to reach is disabled"
                       r"|suspended (?:account|mailbox)|no longer (?:in use|active)|not (?:in use|active)\b|mailbox (?:has )?expired"),
    (INVALID_SENDER, r"sender (?:address |domain )?(?:rejected|refused|denied|invalid|unknown|not (?:allowed|permitted|accepted))"
                     r"|domain of sender(?: address)? \S+ does not (?:exist|resolve)|sender (?:verify|verification) failed"
                     r"|invalid (?:sender|from)|bad sender|unknown sender|from address (?:rejected|invalid|is not)|mail from (?:address )?rejected"
                     r"|sender domain (?:must|does not)|rejected sender|envelope (?:sender|from) (?:address )?(?:is )?(?:rejected|invalid|not)"),
    (POLICY_RELATED, r"polic(?:y|ies)|filtered|\bfilter\b|not (?:authori[sz]ed|allowed|permitted) to (?:send|post|receive)"
                     r"|refused to accept|rejected (?:by|for) (?:the )?(?:recipient|administrator|user)|restrict"
                     r"|prohibited|not accepting (?:mail|messages) from|only accepts mail from|members only|moderat"
                     r"|administrative prohibition|delivery not authori[sz]ed|message refused|rejected by recipient"
                     r"|(?:does not|doesn't) accept (?:mail|e-?mail|messages) from|permission|not allowed to|is not allowed"),
    (MESSAGE_EXPIRED, r"envelope expired|failed \d+ attempts|retry (?:time(?:out)?|timeout) (?:(?:was |has been )?(?:exceeded|reached))|too long (?:in|on) (?:the )?queue"
                      r"|(?:message|delivery) (?:time )?expired|expired? (?:after|in queue)|giving up|gave up|could not be delivered (?:with)?in"
                      r"|(?:has|have) not (?:yet )?been delivered|delivery (?:time|attempts?) (?:limit )?(?:exceeded|expired)|timed? ?out in queue"
                      r"|maximum (?:time|age|lifetime)|for \d+ (?:days|hours)|delayed \d+ (?:hours|days)|still being retried"
                      r"|not (?:yet )?been able to deliver|will continue|unable to deliver (?:in|within)"),
    (DNS_FAILURE, r"not found, try again|temporary (?:dns|lookup) failure|servfail|name server (?:failure|timeout)|dns (?:server )?timeout"),
    (BAD_DOMAIN, r"host (?:\S+ )?not found|domain (?:\S+ )?(?:is not reachable|not reachable)|(?:doesn't|does not) receive (?:e-?)?mail|no mx (?:found|record)"
                 r"|host (?:or domain name )?(?:unknown|not found)|unknown host|domain (?:name )?(?:not found|does not exist|unknown|is not (?:valid|found))"
                 r"|no such (?:domain|host)|(?:invalid|unknown|bad|nonexistent|non-existent) domain|unrouteable (?:mail )?(?:address|domain)"
                 r"|name service error|(?:no|null) mx|does not accept (?:e-?)?mail|dns error: domain name not found"
                 r"|domain (?:\S+ )?(?:couldn't|could not|cannot|can't) be found|hostname not found|unknown mail domain"
                 r"|all relevant mx records point to non-existent hosts|host not found"),
    (INVALID_MAILBOX, r"bad (?:destination )?mailbox address syntax|invalid (?:mailbox|address|recipient) syntax|syntax error in (?:address|recipient)"
                      r"|(?:recipient|address) (?:is )?(?:malformed|syntactically invalid)|illegal (?:address|character)"),
    (INVALID_RECIPIENT, r"(?:user|recipient|mailbox|address|account|addressee|local.?part|alias|name)" + _W
                        + r"(?:unknown|not (?:found|exist|known|listed|valid|available|recogni[sz]ed)|(?:does ?n[o']t|did ?n[o']t) exist|invalid|non-?existent|no longer exists)"
                        + r"|(?:unknown|invalid|no such|nonexistent|non-existent|bad) (?:user|recipient|mailbox|address|account|local|addressee|alias|e-?mail)"
                        + r"|no mailbox|mailbox (?:unavailable|not present)|does not have an? \S+ account|doesn't have an? \S+ account"
                        + r"|no (?:such )?(?:user|person|one) (?:here|at this address|by that name)|is not a valid (?:user|mailbox|address|recipient)"
                        + r"|not (?:a )?(?:valid|known) (?:user|mailbox|recipient)|unknown or illegal|not listed in|address (?:lookup )?failed|undeliverable address"
                        + r"|user (?:is )?unknown|recipientnotfound|no valid recipients?|deleted|addressee unknown|check the recipient"
                        + r"|not our customer|mailbox (?:is )?not found|unknown local part|account (?:that you tried to reach )?does not exist"
                        + r"|invalid address|no account|never logged|by that name|not exist"),
    (NO_ANSWER_FROM_HOST, r"connection (?:timed out|timeout)|timed out while|no answer|not responding|did not respond|no response"),
    (BAD_CONNECTION, r"connection (?:refused|reset|dropped|closed|lost|failed)|lost connection|could not connect|unable to connect"
                     r"|can't connect|cannot connect|network (?:is )?unreachable|host (?:is )?unreachable|broken pipe"),
    (ROUTING_ERRORS, r"mail (?:loop|for \S+ loops back)|loop(?:s)? back to myself|routing loop|too many hops|hop count|mail loop"
                     r"|no route to host|unable to route|routing error|host not reachable|could not find a gateway|network error|mx (?:points to|record) (?:is )?(?:invalid|loop)"),
    (DNS_FAILURE, r"dns (?:lookup )?(?:failure|error|server failure)|could not resolve|unable to resolve|resolver"),
    (PROTOCOL_ERRORS, r"syntax error|command (?:not )?(?:unrecogni[sz]ed|recogni[sz]ed|not implemented)|bad sequence|protocol error"
                      r"|line too long|unrecogni[sz]ed command|pipelining"),
    (CONTENT_RELATED, r"rfc ?(?:2822|5322|822)|not (?:rfc )?compliant|message header|header (?:line|field)|invalid header|duplicate header"
                      r"|mime|malformed|8-?bit|illegal characters?|content (?:was )?rejected|attachment|file type"),
    (TRANSIENT_FAILURE, r"system (?:error|failure|is not|not accepting)|temporar(?:y|ily)|try (?:again )?later|please try again|local error"
                        r"|too many (?:connections|sessions|concurrent|messages|recipients)|rate limit|rate exceeded|throttl|resources? (?:temporarily )?unavailable"
                        r"|service (?:not available|unavailable|currently unavailable)|internal (?:server )?error|server (?:is )?busy|insufficient resources"
                        r"|i/o error|ldap|configuration error|queue (?:file )?write error|deferred"),
)

# Reply-code fallbacks when neither a specific enhanced code nor the text says more.
_REPLY_CODE = {
    421: TRANSIENT_FAILURE, 450: TRANSIENT_FAILURE, 451: TRANSIENT_FAILURE, 452: QUOTA_ISSUES,
    454: AUTHENTICATION_FAILED, 500: PROTOCOL_ERRORS, 501: PROTOCOL_ERRORS, 502: PROTOCOL_ERRORS,
    503: PROTOCOL_ERRORS, 504: PROTOCOL_ERRORS, 521: BAD_DOMAIN, 530: AUTHENTICATION_FAILED,
    534: AUTHENTICATION_FAILED, 535: AUTHENTICATION_FAILED, 550: UNCATEGORIZED, 551: INACTIVE_MAILBOX,
    552: QUOTA_ISSUES, 553: INVALID_MAILBOX, 554: UNCATEGORIZED, 556: BAD_DOMAIN,
}

# "551 User not local; please try <forward-path>" / 5.1.6 "mailbox has moved": the address is gone.
_MOVED_RE = re.compile(r"has moved|moved permanently|no longer (?:at|with|valid at)|user not local|\b5\.1\.6\b", re.IGNORECASE)


# Notification boilerplate that would otherwise read as a reason ("rejected by the recipient domain").
_NOISE = re.compile(
    r"(?:but )?it was rejected by the (?:server for the )?recipient domain(?: [\w.-]{1,100})?(?: by [\w.-]{1,100})?"
    r"|we recommend contacting the other email provider[^.]{0,200}\.?"
    r"|for more (?:information|tips)[^.]{0,200}\.?", re.IGNORECASE)


def _normalise(text: str) -> str:
    return _NOISE.sub(" ", (text or "")[:MAX_TEXT].replace("=\n", "")).lower()


def _first_match(rules, text: str) -> str | None:
    for cls, pattern in rules:
        if pattern.search(text):
            return cls
    return None


def text_class(text: str) -> str | None:
    """The class the reply wording alone suggests, or None."""
    text = _normalise(text)
    return _first_match(_DECISIVE_RULES, text) or _first_match(_TEXT_RULES, text)


def decisive_class(text: str) -> str | None:
    """The class when the wording is one that overrides codes and SMTP-stage heuristics, else None."""
    return _first_match(_DECISIVE_RULES, _normalise(text))


def classify_reply(code: int | None, enhanced: str | None, text: str, *, permanent: bool | None = None) -> Classification:
    """Classify one SMTP reply.

    `permanent` lets a caller that knows better (a DSN "Action: failed" without any code) say so;
    by default a failure is permanent when the enhanced code class or the reply code is 5.
    """
    text = (text or "")[:MAX_TEXT]
    if code is None:
        match = re.match(r"\s*([245]\d\d)\b", text)
        code = int(match.group(1)) if match else None
    if enhanced and enhanced not in text:
        text = f"{enhanced} {text}"  # provider wordings are matched together with their code
    status = parse_enhanced(enhanced) or parse_enhanced(text, MAX_TEXT)
    if permanent is None:
        if status:
            permanent = status[0] == 5
        elif code:
            permanent = code >= 500
        else:
            permanent = True

    by_code, strong = _ENHANCED.get((status[1], status[2]), (None, False)) if status else (None, False)
    if status and by_code is None:
        by_code = {1: INVALID_RECIPIENT, 2: INACTIVE_MAILBOX, 3: TRANSIENT_FAILURE, 4: ROUTING_ERRORS,
                   5: PROTOCOL_ERRORS, 6: CONTENT_RELATED, 7: POLICY_RELATED}.get(status[1], UNCATEGORIZED)
    normalised = _normalise(text)
    decisive = _first_match(_DECISIVE_RULES, normalised)
    by_text = decisive or _first_match(_TEXT_RULES, normalised)

    if decisive:
        bounce_class = decisive
    elif strong and by_code in ADDRESS_CLASSES and by_text in _VETO_CLASSES:
        bounce_class = by_text
    elif strong:
        bounce_class = by_code
    elif by_text:
        bounce_class = by_text
    elif by_code:
        bounce_class = by_code
    elif code in _REPLY_CODE:
        bounce_class = _REPLY_CODE[code]
    else:
        bounce_class = UNCATEGORIZED if permanent else TRANSIENT_FAILURE

    if status and status[0] == 2:
        return Classification(UNCATEGORIZED, SOFT)
    if not permanent and bounce_class in ADDRESS_CLASSES and by_text is None and not strong:
        bounce_class = TRANSIENT_FAILURE
    hard = permanent and (
        bounce_class in ADDRESS_CLASSES
        or (bounce_class == INACTIVE_MAILBOX and bool(_MOVED_RE.search(text) or (status and status[1:] == (1, 6))))
    )
    return Classification(bounce_class, HARD if hard else SOFT)
