"""sending.addresses.parse_mailbox builds a bare address from its normalised parts instead of
parsing it again: the Address is the one parsing would give, for every valid address."""
import string

import pytest
from email.headerregistry import Address
from hypothesis import given, settings
from hypothesis import strategies as st

from sending.addresses import InvalidAddress, normalize_address, parse_mailbox

ATEXT = string.ascii_letters + string.digits + "#$&'*+-/=?^_`{|}~"
atoms = st.text(ATEXT, min_size=1, max_size=10)
local_parts = st.lists(atoms, min_size=1, max_size=4).map(".".join).filter(lambda s: len(s) <= 64)
labels = st.from_regex(r"\A[A-Za-z0-9](?:[A-Za-z0-9-]{0,8}[A-Za-z0-9])?\Z")
domains = st.lists(labels, min_size=1, max_size=3).map(lambda parts: ".".join(parts + ["example"]))


def as_parsed(address):
    return Address(addr_spec=address)


def same(a, b):
    return (a.username, a.domain, a.display_name, a.addr_spec, str(a)) == (b.username, b.domain, b.display_name, b.addr_spec, str(b))


@settings(max_examples=300, deadline=None)
@given(local=local_parts, domain=domains, padded=st.booleans())
def test_a_bare_address_is_the_address_parsing_gives(local, domain, padded):
    value = f"{local}@{domain}"
    mailbox = parse_mailbox(f"  {value} " if padded else value, field="to")
    assert same(mailbox, as_parsed(normalize_address(value)))


@pytest.mark.parametrize("value", ["Alice.Smith@Example.ORG", "o'brien+tag@bücher.example", "x{y}|z@a-b.example"])
def test_examples_with_case_idn_and_symbols(value):
    assert same(parse_mailbox(value, field="to"), as_parsed(normalize_address(value)))


@pytest.mark.parametrize("value", ["no-at-sign", "a@b@example.org", "a b@example.org", "a@[127.0.0.1]", "é@example.org"])
def test_invalid_bare_addresses_are_still_refused(value):
    with pytest.raises(InvalidAddress):
        parse_mailbox(value, field="to")
