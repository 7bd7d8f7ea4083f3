import time

import pytest

from sending.bounces.classify import BOUNCE_CLASSES, Classification, classify_reply

# (code, enhanced, text) -> (class, disposition): replies as the big providers word them.
CASES = [
    # unknown users: the only thing we suppress
    (550, "5.1.1", "5.1.1 The email account that you tried to reach does not exist. Please try double-checking "
                   "the recipient's email address for typos or unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser",
     "InvalidRecipient", "hard"),
    (550, "5.5.0", "Requested action not taken: mailbox unavailable", "InvalidRecipient", "hard"),
    (550, "5.1.10", "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", "InvalidRecipient", "hard"),
    (554, "5.0.0", "delivery error: dd This user doesn't have a yahoo.com account (x@yahoo.com) [0]", "InvalidRecipient", "hard"),
    (550, None, "sorry, no mailbox here by that name. (#5.1.1)", "InvalidRecipient", "hard"),
    (550, "5.1.1", "<x@example.org>: Recipient address rejected: User unknown in virtual mailbox table", "InvalidRecipient", "hard"),
    (550, "5.4.1", "Recipient address rejected: Access denied. AS(201806281) [BN8NAM12FT012.eop-nam12.prod.protection.outlook.com]",
     "InvalidRecipient", "hard"),
    (550, "5.1.1", "<x@icloud.com>: user does not exist", "InvalidRecipient", "hard"),
    (None, None, "Unrouteable address", "BadDomain", "hard"),
    (550, "5.1.2", "Host or domain name not found. Name service error for name=nx.example type=MX: Host not found", "BadDomain", "hard"),
    (556, "5.1.10", "Recipient address has null MX", "BadDomain", "hard"),
    (551, "5.1.6", "User has moved; please try <new@example.org>", "InactiveMailbox", "hard"),
    # ... and everything that is not the address's fault stays soft
    (550, "5.7.1", "Service unavailable, Client host [192.0.2.1] blocked using Spamhaus. To request removal from "
                   "this list see https://www.spamhaus.org/query/ip/192.0.2.1", "SpamBlock", "soft"),
    (550, "5.7.1", "[192.0.2.1] Our system has detected that this message is likely unsolicited mail. To reduce the "
                   "amount of spam sent to Gmail, this message has been blocked.", "SpamContent", "soft"),
    (550, "5.7.1", "Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service provider "
                   "since part of their network is on our block list (S3150).", "SpamBlock", "soft"),
    (554, "5.7.9", "Message not accepted for policy reasons. See https://postmaster.yahooinc.com/error-codes", "PolicyRelated", "soft"),
    (421, "4.7.0", "[TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints",
     "SpamBlock", "soft"),
    (550, "5.1.1", "5.1.1 <x@example.org>: Recipient address rejected: Blocked by spam filter (reputation)", "SpamBlock", "soft"),
    (550, "5.7.708", "Service unavailable. Access denied, traffic not accepted from this IP.", "SpamBlock", "soft"),
    (554, "5.7.1", "[CS01] Message rejected due to local policy", "PolicyRelated", "soft"),
    (554, None, "30 Sorry, your message to x@yahoo.com cannot be delivered. This mailbox is disabled (554.30).",
     "InactiveMailbox", "soft"),
    (552, "5.2.2", "The email account that you tried to reach is over quota.", "QuotaIssues", "soft"),
    (552, "5.2.2", "<x@example.org>: Recipient address rejected: User unknown; mailbox full", "QuotaIssues", "soft"),
    (550, "5.2.1", "The email account that you tried to reach is disabled.", "InactiveMailbox", "soft"),
    (550, "5.7.26", "This message does not have authentication information or fails to pass authentication checks (SPF or DKIM)",
     "AuthenticationFailed", "soft"),
    (550, "5.7.509", "Access denied, sending domain example.org does not pass DMARC verification", "AuthenticationFailed", "soft"),
    (550, "5.7.1", "Relaying denied", "RelayDenied", "soft"),
    (553, "5.1.8", "Domain of sender address nobody@nx.example does not exist", "InvalidSender", "soft"),
    (554, "5.7.1", "Message rejected: a virus was found (Eicar-Test-Signature)", "VirusRelated", "soft"),
    (452, "4.2.2", "The email account that you tried to reach is over quota", "QuotaIssues", "soft"),
    (450, "4.1.1", "<x@example.org>: Recipient address rejected: unverified address: connect timeout", "InvalidRecipient", "soft"),
    (421, None, "connect to mx.example.org[192.0.2.9]:25: Connection timed out", "NoAnswerFromHost", "soft"),
    (421, "4.4.2", "connection dropped", "BadConnection", "soft"),
    (451, "4.4.0", "DNS lookup failure, try again", "DNSFailure", "soft"),
    (421, None, "Too many concurrent SMTP connections; please try again later.", "TransientFailure", "soft"),
    (554, "5.4.6", "Mail for example.org loops back to myself", "RoutingErrors", "soft"),
    (500, "5.5.1", "Unrecognized command", "ProtocolErrors", "soft"),
    (554, "5.6.0", "Message is not RFC 5322 compliant: duplicate Subject header", "ContentRelated", "soft"),
    (550, None, "Administrative prohibition", "PolicyRelated", "soft"),
    (550, None, "", "Uncategorized", "soft"),
]


@pytest.mark.parametrize("code,enhanced,text,expected_class,expected_disposition", CASES)
def test_it_classifies_provider_replies(code, enhanced, text, expected_class, expected_disposition):
    assert classify_reply(code, enhanced, text) == Classification(expected_class, expected_disposition)


def test_a_spam_block_wrapped_around_5_1_1_never_suppresses():
    verdict = classify_reply(550, "5.1.1", "Recipient rejected: your IP 192.0.2.7 is listed on a blocklist (RBL)")
    assert verdict.disposition == "soft"


def test_a_temporary_user_unknown_is_not_a_hard_bounce():
    assert classify_reply(450, "4.1.1", "Recipient address rejected: User unknown").disposition == "soft"


def test_permanent_can_be_asserted_by_the_caller():
    assert classify_reply(None, None, "user unknown", permanent=False).disposition == "soft"
    assert classify_reply(None, None, "user unknown", permanent=True).disposition == "hard"


def test_the_enhanced_code_in_the_text_is_used_when_not_given_separately():
    assert classify_reply(None, None, "550 5.1.1 <x@example.org>... mailbox? what mailbox").bounce_class == "InvalidRecipient"


def test_a_success_code_is_never_a_hard_bounce():
    assert classify_reply(250, "2.0.0", "OK user unknown").disposition == "soft"


def test_every_class_returned_is_a_known_class():
    for code, enhanced, text, *_ in CASES:
        assert classify_reply(code, enhanced, text).bounce_class in BOUNCE_CLASSES


def test_classification_is_fast_even_on_long_hostile_text():
    hostile = ("user " * 20000) + "a" * 50000 + "@" * 10000
    started = time.perf_counter()
    for _ in range(20):
        classify_reply(550, None, hostile)
    assert (time.perf_counter() - started) / 20 < 0.1  # bounded: only the first few KB are examined


def test_typical_replies_classify_in_well_under_a_millisecond():
    replies = [(code, enhanced, text) for code, enhanced, text, *_ in CASES] * 30
    started = time.perf_counter()
    for code, enhanced, text in replies:
        classify_reply(code, enhanced, text)
    assert (time.perf_counter() - started) / len(replies) < 0.002
