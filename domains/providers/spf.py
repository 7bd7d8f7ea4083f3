"""SPF (RFC 7208) record editing for automatic DNS setup: pure functions over logical TXT values.

A domain must publish exactly one `v=spf1` record (two is a permanent error at every receiver),
so `spf_append` folds ours into what is there instead of adding a second record.
"""
import re

from dispatch_site.errors import ValidationFailed

# RFC 7208 §4.6.4: at most 10 mechanisms/modifiers that cause DNS lookups.
SPF_LOOKUP_LIMIT = 10
_LOOKUP_MECHANISMS = {"include", "a", "mx", "ptr", "exists"}
_LOOKUP_MODIFIERS = {"redirect"}
_MODIFIER = re.compile(r"^([a-z][a-z0-9_.-]*)=", re.IGNORECASE)
_MECHANISM = re.compile(r"([^:/]*)(?:[:/](.*))?$", re.DOTALL)
_QUALIFIERS = "+-~?"


class SpfTooManyLookups(ValidationFailed):
    code = "SPF_TOO_MANY_LOOKUPS"
    default_message = "The SPF record would need more than 10 DNS lookups."


def is_spf(value):
    head = value.strip().lower()
    return head == "v=spf1" or head.startswith("v=spf1 ")


def fresh_spf(include_host, all_term="~all"):
    return f"v=spf1 include:{include_host} {all_term}"


def _terms(value):
    return value.split()[1:]


def _parse(term):
    """(kind, name, argument) of one term: kind is "modifier" or "mechanism"."""
    modifier = _MODIFIER.match(term)
    if modifier:
        return "modifier", modifier.group(1).lower(), term[modifier.end() :]
    body = term[1:] if term[:1] in _QUALIFIERS else term
    mechanism = _MECHANISM.match(body)
    return "mechanism", mechanism.group(1).lower(), mechanism.group(2) or ""


def _is_all(term):
    kind, name, _ = _parse(term)
    return kind == "mechanism" and name == "all"


def _includes_host(term, host):
    kind, name, argument = _parse(term)
    return kind == "mechanism" and name == "include" and argument.rstrip(".").lower() == host


def lookup_count(value):
    """DNS-lookup terms in one SPF record (its own terms; nested includes are not followed)."""
    count = 0
    for term in _terms(value):
        kind, name, _ = _parse(term)
        if (kind == "mechanism" and name in _LOOKUP_MECHANISMS) or (kind == "modifier" and name in _LOOKUP_MODIFIERS):
            count += 1
    return count


def _insert_position(terms):
    """Before `all` (terms after it are never evaluated), else before the modifiers, else last."""
    for index, term in enumerate(terms):
        if _is_all(term):
            return index
    for index, term in enumerate(terms):
        if _parse(term)[0] == "modifier":
            return index
    return len(terms)


def _merged_terms(records):
    """One term list from several SPF records (the first wins; later ones add what is missing)."""
    terms = list(_terms(records[0]))
    seen = {t.lower() for t in terms}
    modifier_names = {_parse(t)[1] for t in terms if _parse(t)[0] == "modifier"}
    for record in records[1:]:
        for term in _terms(record):
            kind, name, _ = _parse(term)
            if term.lower() in seen or (kind == "mechanism" and name == "all"):
                continue
            if kind == "modifier":
                if name in modifier_names:
                    continue
                modifier_names.add(name)
                terms.append(term)
            else:
                terms.insert(_insert_position(terms), term)
            seen.add(term.lower())
    return terms


def spf_append(records, include_host):
    """The one SPF record that authorises `include_host` on top of `records` (the existing SPF
    records at the name, logical values). Keeps the existing terms, their order and the `all`
    qualifier; adds `include:<host>` just before `all`. Returns the first record unchanged when it
    already includes the host (and it is the only one).

    Raises SpfTooManyLookups if the result would exceed the 10-lookup limit."""
    host = include_host.rstrip(".").lower()
    if not records:
        return fresh_spf(host)
    terms = _merged_terms(records)
    cut = _insert_position(terms)
    effective = terms[:cut] if any(_is_all(t) for t in terms) else terms
    if any(_includes_host(t, host) for t in effective):
        if len(records) == 1:
            return records[0]
    else:
        # An include after `all` is dead; drop it and put ours where it counts.
        terms = [t for t in terms if not _includes_host(t, host)]
        terms.insert(_insert_position(terms), f"include:{host}")
    merged = " ".join(["v=spf1", *terms])
    count = lookup_count(merged)
    if count > SPF_LOOKUP_LIMIT:
        raise SpfTooManyLookups(
            f"Adding include:{host} to the SPF record would need {count} DNS lookups; receivers allow "
            f"at most {SPF_LOOKUP_LIMIT} and would fail SPF for every message. Remove unused include/a/mx "
            "terms (or flatten them into ip4:/ip6:), or choose spf_action=overwrite or skip.",
            details={"lookups": count, "limit": SPF_LOOKUP_LIMIT, "record": merged},
        )
    return merged
