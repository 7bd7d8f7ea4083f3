"""The fast path for simple address-list headers (sending.addresses.simple_address_list) and
MessageHead.address_lists / .text give exactly what email.policy.default gives, and leave
everything they are not certain of to the full parser."""
from email import policy
from email.parser import BytesHeaderParser

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sending.addresses import simple_address_list
from sending.services import MessageHead

from .test_message_head import outcome


def reference(value):
    """What reading an address-list header with policy.default gives."""
    header = outcome(policy.default.header_factory, "To", value)
    if isinstance(header, Exception):
        return header
    return [(address.display_name, address.addr_spec) for address in header.addresses]


# Mostly the simple forms (so the fast path is exercised), with awkward pieces mixed in.
ATOM = st.from_regex(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,6}", fullmatch=True)
AWKWARD_WORDS = st.sampled_from([
    "J.", "Doe,", "Müller", "=?utf-8?q?Caf=C3=A9?=", "=?", "?=", "(c)", "(nested (c))", "\\", '"', "<", ">", "@", ":",
    ";", "[", "]", ".", "\udce9t\udce9", "\x01", "\x7f", "é", "",
])
SPACE = st.sampled_from(["", "", "", " ", " ", " ", " ", "  ", "\t", " \t ", "\r\n ", "\n", "\r"])
SIMPLE_LOCAL = st.from_regex(r"[A-Za-z0-9+_'=?-]{1,8}(\.[A-Za-z0-9]{1,4})?", fullmatch=True)
SIMPLE_DOMAIN = st.from_regex(r"[A-Za-z0-9-]{1,6}(\.[A-Za-z0-9-]{1,6}){1,2}", fullmatch=True)
LOCAL = st.one_of(
    SIMPLE_LOCAL, SIMPLE_LOCAL, SIMPLE_LOCAL, SIMPLE_LOCAL,
    st.sampled_from(["ann", "Bob.Smith", "x+tag", "o'neil", "a..b", ".a", "a.", '"quoted local"', '"a\\"b"', "a b",
                     "%x", "x!y", "münchen", "=?x?=", "a(c)b", ""]),
)
DOMAIN = st.one_of(
    SIMPLE_DOMAIN, SIMPLE_DOMAIN, SIMPLE_DOMAIN, SIMPLE_DOMAIN,
    st.sampled_from(["example.com", "EXAMPLE.org", "b", "a..b", "a.b.", "[1.2.3.4]", "1.2", "ü.example",
                     "xn--caf-dma.example", "a_b.com", "a .b", "(c)example.com", ""]),
)
AT = st.sampled_from(["@"] * 12 + [" @ ", "@@", ""])


@st.composite
def phrases(draw):
    words = draw(st.lists(st.one_of(ATOM, ATOM, ATOM, AWKWARD_WORDS), min_size=1, max_size=4))
    return "".join(word + draw(SPACE) for word in words).rstrip(" ") if draw(st.booleans()) else " ".join(words)


@st.composite
def mailboxes(draw):
    addr = draw(LOCAL) + draw(AT) + draw(DOMAIN)
    form = draw(st.integers(0, 6))
    if form in (0, 1):
        return addr
    if form in (2, 3):
        return draw(phrases()) + draw(SPACE) + "<" + draw(st.sampled_from(["", "", "", " ", "@relay.example:"])) + addr + ">"
    if form == 4:
        quoted = draw(st.text(st.sampled_from('ab ,.;:<>@\t\\"()éz\x01'), max_size=8))
        return '"' + quoted + '"' + draw(SPACE) + "<" + addr + ">"
    if form == 5:
        return "<" + addr + ">" + draw(st.sampled_from(["", "", "x", " (comment)", ">"]))
    return draw(st.text(st.sampled_from('ab @.<>,;:"\\()\t=?é'), max_size=12))


@st.composite
def address_lists(draw):
    items = draw(st.lists(mailboxes(), min_size=0, max_size=4))
    separators = [draw(st.sampled_from([",", ", ", ", ", ", ", " ,", ",,", ", ,", ";", " ", ",\r\n\t"])) for _ in items]
    value = "".join(item + sep for item, sep in zip(items, separators))
    value = value if draw(st.integers(0, 3)) == 0 else value.rstrip(",; \t\r\n")
    if draw(st.integers(0, 5)) == 0:
        value = "Group: " + value + ";"
    return draw(SPACE) + value + draw(SPACE)


@settings(max_examples=2000, deadline=None)
@given(st.one_of(address_lists(), st.text(max_size=40), st.text(st.characters(max_codepoint=127), max_size=40)))
@example("Bench <sender@bench.example>")
@example('"Doe, J." <j@example.com>, ann@example.org,\tBob  Smith\t<bob@example.net> ')
def test_the_fast_path_reads_addresses_as_the_default_policy_does(value):
    value = value.replace("\r", "").replace("\n", "")  # unfolded, as MessageHead hands it over
    fast = simple_address_list(value)
    if fast is not None:
        assert fast == reference(value)


WSP = st.from_regex(r"[ \t]{0,3}", fullmatch=True)


@st.composite
def simple_lists(draw):
    """Only the forms the fast path takes, with every kind of spacing and quoted text."""
    items = []
    for _ in range(draw(st.integers(1, 4))):
        addr = draw(SIMPLE_LOCAL) + "@" + draw(SIMPLE_DOMAIN)
        form = draw(st.integers(0, 3))
        if form == 0:
            item = addr
        elif form == 1:
            words = draw(st.lists(ATOM, min_size=1, max_size=4))
            item = "".join(word + draw(st.from_regex(r"[ \t]{1,3}", fullmatch=True)) for word in words[:-1]) + words[-1]
            item += draw(WSP) + "<" + addr + ">"
        elif form == 2:
            item = '"' + draw(st.text(st.characters(min_codepoint=32, max_codepoint=126, exclude_characters='"\\'), max_size=12))
            item += '"' + draw(WSP) + "<" + addr + ">"
        else:
            item = "<" + addr + ">"
        items.append(draw(WSP) + item + draw(WSP))
    return ",".join(items)


@settings(max_examples=1000, deadline=None)
@given(simple_lists().filter(lambda value: "=?" not in value))
def test_simple_lists_take_the_fast_path_and_read_the_same(value):
    fast = simple_address_list(value)
    assert fast is not None and fast == reference(value)


@pytest.mark.parametrize("value", [
    "ann@example.com", "Ann <ann@example.com>", "<ann@example.com>", '"Doe, J." <j@example.com>', '"" <a@example.com>',
    "Ann  Lee\t<ann@example.com>, bob@example.org ,carol@example.net", "x+tag@Example.COM",
])
def test_the_common_forms_take_the_fast_path(value):
    assert simple_address_list(value) is not None and simple_address_list(value) == reference(value)


@pytest.mark.parametrize("value", [
    "", "a@example.com,", "a@example.com, , b@example.com", "J. Smith <j@example.com>", "Ann (the boss) <a@example.com>",
    "=?utf-8?q?Caf=C3=A9?= <cafe@example.com>", "Grüße <g@example.de>", "undisclosed-recipients:;", '"a\\"b" <a@example.com>',
    "<@relay.example:a@example.com>", "a@b", "Ann <a@example.com> x",
])
def test_anything_else_goes_to_the_full_parser(value):
    assert simple_address_list(value) is None


HEADER_NAMES = ["From", "To", "Cc", "Subject", "X-Dispatch-Tags"]


@st.composite
def messages(draw):
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        name = draw(st.sampled_from(HEADER_NAMES))
        value = draw(st.one_of(address_lists(), st.text(st.characters(max_codepoint=127, exclude_characters="\r\n"),
                                                         max_size=30)))
        value = value.replace("\r\n", "\r\n ").replace("\r", "").replace("\n", "")  # keep fields well-formed...
        if draw(st.booleans()) and " " in value.strip():
            head, _, tail = value.strip().partition(" ")
            value = head + "\r\n\t" + tail  # ...and sometimes folded
        lines.append(f"{name}: {value}\r\n")
    body = draw(st.sampled_from(["\r\nbody\r\n", "\r\nTo: in-body@example.com\r\n\r\nmore\r\n", "", "\r\n",
                                 "no separator: x\r\n", " continued\r\n\r\nbody\r\n"]))
    return ("".join(lines) + body).encode("utf-8", "surrogateescape")


@settings(max_examples=500, deadline=None)
@given(messages())
def test_message_head_reads_addresses_and_text_as_the_default_policy_does(raw):
    expected = BytesHeaderParser(policy=policy.default).parsebytes(raw)
    head = MessageHead(raw)
    for name in HEADER_NAMES + ["Absent"]:
        want = outcome(expected.get_all, name)
        if name in ("From", "To", "Cc"):
            got = outcome(head.address_lists, name)
            if isinstance(want, Exception):
                assert isinstance(got, Exception)
            else:
                assert got == [[(a.display_name, a.addr_spec) for a in header.addresses] for header in want or []]
        want_text = outcome(lambda: str(expected.get(name, "")))
        got_text = outcome(head.text, name)
        if isinstance(want_text, Exception):
            assert isinstance(got_text, Exception)
        else:
            assert got_text == want_text


@st.composite
def header_blocks(draw):
    """Header blocks as clients send them, well-formed or not."""
    line = st.one_of(
        st.from_regex(r"[A-Za-z-]{1,10}:[ \t]?[ -~]{0,20}", fullmatch=True),
        st.from_regex(r"[ \t][ -~]{0,10}", fullmatch=True),
        st.sampled_from(["From sender Mon Nov 23 2026", ":no name", "no colon", "Name :spaced", "Sub\x80ject: x",
                         "Subject: caf\xc3\xa9", "Subject:", "Subject: a\rb", "Subject: a\nb", "", " ", "\t"]),
    )
    lines = draw(st.lists(line, max_size=8))
    body = draw(st.sampled_from(["\r\n\r\nbody\r\n", "\r\n\r\n", "\r\n", "", "\r\n\r\nA: in body\r\n", "\n\nbody"]))
    return "\r\n".join(lines).encode("latin-1") + body.encode()


@settings(max_examples=1000, deadline=None)
@given(st.one_of(header_blocks(), messages(), st.binary(max_size=60)))
@example(b"From: a@example.com\r\nSubject:\r\n continued\r\n\r\nbody")
@example(b"\r\n\r\nbody")
def test_message_head_splits_fields_as_the_header_parser_does(raw):
    expected = BytesHeaderParser(policy=policy.compat32).parsebytes(raw)._headers
    assert MessageHead(raw)._fields == expected
