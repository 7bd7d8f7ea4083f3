"""SPF merging and DMARC editing (pure functions over logical TXT values)."""
import pytest

from dispatch_site.errors import ValidationFailed
from domains.providers.base import txt_quote, txt_unquote
from domains.providers.dmarc import dmarc_with_rua, fresh_dmarc, is_dmarc
from domains.providers.spf import SpfTooManyLookups, is_spf, lookup_count, spf_append

US = "mail.dispatch.test"


def test_without_an_spf_record_ours_is_the_whole_record():
    assert spf_append([], US) == "v=spf1 include:mail.dispatch.test ~all"


def test_our_include_goes_after_the_other_includes_and_before_all():
    assert spf_append(["v=spf1 include:_spf.google.com include:mailgun.org ~all"], US) == (
        "v=spf1 include:_spf.google.com include:mailgun.org include:mail.dispatch.test ~all"
    )


@pytest.mark.parametrize("qualifier", ["+all", "-all", "~all", "?all", "all"])
def test_the_all_qualifier_is_kept_and_stays_last(qualifier):
    merged = spf_append([f"v=spf1 ip4:192.0.2.0/24 mx {qualifier}"], US)
    assert merged == f"v=spf1 ip4:192.0.2.0/24 mx include:mail.dispatch.test {qualifier}"


@pytest.mark.parametrize("existing", [
    "v=spf1 include:mail.dispatch.test -all",
    "v=spf1 include:_spf.google.com INCLUDE:Mail.Dispatch.Test. ~all",
    "V=SPF1 +include:mail.dispatch.test ?all",
])
def test_a_record_that_already_includes_us_is_left_exactly_as_it_is(existing):
    assert spf_append([existing], US) is existing


def test_appending_twice_changes_nothing_the_second_time():
    once = spf_append(["v=spf1 a mx -all"], US)
    assert spf_append([once], US) == once == "v=spf1 a mx include:mail.dispatch.test -all"


def test_an_include_after_all_is_dead_and_is_moved_before_it():
    assert spf_append(["v=spf1 mx -all include:mail.dispatch.test"], US) == "v=spf1 mx include:mail.dispatch.test -all"


def test_without_all_the_include_goes_before_a_redirect():
    assert spf_append(["v=spf1 mx redirect=_spf.example.net"], US) == "v=spf1 mx include:mail.dispatch.test redirect=_spf.example.net"


def test_without_all_or_modifiers_the_include_is_appended():
    assert spf_append(["v=spf1 mx"], US) == "v=spf1 mx include:mail.dispatch.test"


def test_a_multi_string_record_is_merged_as_its_joined_value():
    logical = txt_unquote('"v=spf1 include:_spf.google.com include:mai" "lgun.org ~all"')
    merged = spf_append([v for v in ["google-site-verification=abc", logical] if is_spf(v)], US)

    assert merged == "v=spf1 include:_spf.google.com include:mailgun.org include:mail.dispatch.test ~all"
    assert txt_unquote(txt_quote(merged)) == merged


def test_two_spf_records_become_one():
    merged = spf_append(["v=spf1 include:_spf.google.com -all", "v=spf1 include:mailgun.org a ~all"], US)
    assert merged == "v=spf1 include:_spf.google.com include:mailgun.org a include:mail.dispatch.test -all"


def test_lookup_mechanisms_are_counted():
    assert lookup_count("v=spf1 include:a.example a mx:b.example ptr exists:%{i}.x.example redirect=c.example") == 6
    assert lookup_count("v=spf1 ip4:192.0.2.1 ip6:2001:db8::/32 -all exp=explain.example") == 0


def test_ten_lookups_are_allowed():
    existing = "v=spf1 " + " ".join(f"include:s{i}.example" for i in range(9)) + " -all"
    assert lookup_count(spf_append([existing], US)) == 10


def test_more_than_ten_lookups_is_refused_clearly():
    existing = "v=spf1 a mx " + " ".join(f"include:s{i}.example" for i in range(8)) + " -all"

    with pytest.raises(SpfTooManyLookups) as raised:
        spf_append([existing], US)

    error = raised.value
    assert (error.status, error.code) == (400, "SPF_TOO_MANY_LOOKUPS")
    assert "11 DNS lookups" in error.message and "overwrite" in error.message
    assert error.details["lookups"] == 11 and error.details["limit"] == 10


def test_a_record_already_including_us_is_not_refused_even_when_long():
    existing = "v=spf1 a mx " + " ".join(f"include:s{i}.example" for i in range(9)) + f" include:{US} -all"
    assert spf_append([existing], US) is existing


# DMARC


def test_a_fresh_dmarc_record_monitors_and_reports():
    assert fresh_dmarc("dmarc@example.com") == "v=DMARC1; p=none; rua=mailto:dmarc@example.com"
    assert fresh_dmarc() == "v=DMARC1; p=none"
    assert is_dmarc(fresh_dmarc()) and not is_dmarc("v=spf1 -all")


def test_update_adds_rua_and_keeps_the_policy_and_other_tags():
    assert dmarc_with_rua("v=DMARC1; p=reject; pct=50; adkim=s", "dmarc@example.com") == (
        "v=DMARC1; p=reject; rua=mailto:dmarc@example.com; pct=50; adkim=s"
    )


def test_update_keeps_existing_report_addresses():
    assert dmarc_with_rua("v=DMARC1;p=quarantine;rua=mailto:reports@vendor.example!10m;ruf=mailto:f@example.com", "dmarc@example.com") == (
        "v=DMARC1; p=quarantine; rua=mailto:reports@vendor.example!10m,mailto:dmarc@example.com; ruf=mailto:f@example.com"
    )


def test_update_with_the_address_already_there_changes_nothing():
    existing = "v=DMARC1;  p=reject; rua=mailto:Dmarc@Example.com"
    assert dmarc_with_rua(existing, "dmarc@example.com") is existing


@pytest.mark.parametrize("email", ["not-an-email", "a,b@example.com", "x!y@example.com", ""])
def test_a_rua_address_that_would_break_the_record_is_refused(email):
    with pytest.raises(ValidationFailed) as raised:
        dmarc_with_rua("v=DMARC1; p=none", email)
    assert raised.value.status == 400 and "dmarc_rua_email" in raised.value.details
