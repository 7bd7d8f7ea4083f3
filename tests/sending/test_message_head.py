"""MessageHead (the gateway's lazy header reader) gives, for every header asked for, exactly
what an EmailMessage parsed with email.policy.default gives."""
from email import policy
from email.parser import BytesHeaderParser

from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch_site.errors import ValidationFailed
from sending.services import MessageHead

NAMES = ["From", "To", "Cc", "Subject", "Message-ID", "Date", "X-Dispatch-Tags", "X-Dispatch-Metadata", "Reply-To",
         "Content-Type"]
VALUES = st.sampled_from([
    "Ann <ann@example.com>", "ann@example.com, Bob <bob@example.org>", '"Doe, J." <j@example.com>',
    "=?utf-8?q?Caf=C3=A9?= <cafe@example.com>", "Grüße <gruss@example.de>", "undisclosed-recipients:;",
    "<abc.123@client.example>", "Wed, 25 Nov 2026 08:00:00 +0000", "not a date", '["a", "b"]', '{"k": 1}',
    "text/plain; charset=utf-8", "multipart/mixed; boundary=\"x y\"", "", "  spaced   out  ", "broken <",
    "=?iso-8859-1?q?=E9t=E9?=",
])


@st.composite
def header_blocks(draw):
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        name = draw(st.sampled_from(NAMES))
        value = draw(VALUES)
        if draw(st.booleans()) and " " in value.strip():
            head, _, tail = value.strip().partition(" ")
            value = head + "\r\n\t" + tail  # folded
        lines.append(f"{name}: {value}\r\n")
    return ("".join(lines) + "\r\nbody\r\n").encode("utf-8")


def outcome(function, *args):
    try:
        return function(*args)
    except Exception as exc:  # noqa: BLE001 - compared with the other parser's outcome
        return exc


@settings(max_examples=300, deadline=None)
@given(header_blocks())
def test_every_header_reads_as_the_default_policy_reads_it(raw):
    expected = BytesHeaderParser(policy=policy.default).parsebytes(raw)
    head = MessageHead(raw)
    for name in NAMES + ["Absent"]:
        want_all = outcome(expected.get_all, name)
        got_all = outcome(head.get_all, name)
        if isinstance(want_all, Exception):
            # The standard parser fails on some broken input; we refuse that message instead.
            assert isinstance(got_all, ValidationFailed) and "cannot be parsed" in got_all.message
            continue
        assert (got_all is None) == (want_all is None)
        for got, want in zip(got_all or [], want_all or []):
            # Header classes are made per registry (ours caches them): compare by name and content.
            assert (type(got).__name__, got.name, str(got)) == (type(want).__name__, want.name, str(want))
            for attribute in ("addresses", "datetime", "content_type", "params"):
                assert getattr(got, attribute, None) == getattr(want, attribute, None)
            assert [type(d) for d in got.defects] == [type(d) for d in want.defects]
        assert str(head.get(name, "")) == str(expected.get(name, ""))
        assert (name in head) == (name in expected)
