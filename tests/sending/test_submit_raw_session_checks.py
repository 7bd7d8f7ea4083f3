"""submit_raw_many trusts what the SMTP session checked moments before (the MAIL FROM domain,
every RCPT's suppression) instead of asking the database again; anything else it still checks."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dispatch_site.errors import DomainNotVerified, RecipientSuppressed
from domains.models import Domain
from sending.models import Message, Suppression
from sending.services import SubmitResult, submit_raw_many

from .conftest import make_verified_domain
from .test_submit_raw import RAW

pytestmark = pytest.mark.django_db


def item(verified, raw=RAW, rcpt_tos=("alice@example.org", "carol@example.org"), mail_from="bounces@example.com"):
    return {"mail_from": mail_from, "rcpt_tos": list(rcpt_tos), "raw": raw, "sender_domain": verified,
            "recipients_checked": True}


def reads_of(queries, model):
    return [q["sql"] for q in queries if model._meta.db_table in q["sql"] and q["sql"].lstrip().upper().startswith("SELECT")]


def test_what_the_session_checked_is_not_read_again(tenant, verified_domain):
    with CaptureQueriesContext(connection) as captured:
        outcomes = submit_raw_many(tenant=tenant, items=[item(verified_domain), item(verified_domain)])
    assert all(isinstance(o, SubmitResult) for o in outcomes)
    assert reads_of(captured.captured_queries, Domain) == []
    assert reads_of(captured.captured_queries, Suppression) == []


def test_the_stored_message_is_the_same_as_without_the_sessions_answers(tenant, verified_domain):
    checked = submit_raw_many(tenant=tenant, items=[item(verified_domain)])[0].message
    plain = submit_raw_many(tenant=tenant, items=[{"mail_from": "bounces@example.com", "raw": RAW,
                                                   "rcpt_tos": ["alice@example.org", "carol@example.org"]}])[0].message
    fields = ("from_address", "from_header", "subject", "to_addresses", "cc_addresses", "bcc_count", "status", "body_size_bytes")
    assert [getattr(checked, f) for f in fields] == [getattr(plain, f) for f in fields]
    recipients = lambda m: sorted(m.recipients.values_list("email", "kind", "status"))  # noqa: E731
    assert recipients(checked) == recipients(plain)


def test_a_header_from_on_another_domain_is_still_looked_up(tenant, verified_domain):
    make_verified_domain(tenant, "second.example")
    on_second = RAW.replace(b"shop@example.com", b"shop@second.example")
    on_unverified = RAW.replace(b"shop@example.com", b"shop@unverified.example")
    with CaptureQueriesContext(connection) as captured:
        good, refused = submit_raw_many(tenant=tenant, items=[item(verified_domain, raw=on_second),
                                                              item(verified_domain, raw=on_unverified)])
    assert isinstance(good, SubmitResult) and good.message.from_address == "shop@second.example"
    assert isinstance(refused, DomainNotVerified)
    assert len(reads_of(captured.captured_queries, Domain)) == 2  # second.example, unverified.example


def test_mail_from_is_looked_up_when_the_session_did_not_vouch_for_it(tenant, verified_domain):
    Domain.objects.filter(pk=verified_domain.pk).update(status=Domain.Status.FAILED)
    refused, = submit_raw_many(tenant=tenant, items=[item(None)])
    assert isinstance(refused, DomainNotVerified)
    assert not Message.objects.exists()


def test_another_tenants_domain_is_never_taken_as_vouched(tenant, other_tenant, verified_domain):
    theirs = make_verified_domain(other_tenant, "theirs.example")
    raw = RAW.replace(b"shop@example.com", b"shop@theirs.example")
    refused, = submit_raw_many(tenant=tenant, items=[item(theirs, raw=raw, mail_from="bounces@theirs.example")])
    assert isinstance(refused, DomainNotVerified)


def test_recipients_the_session_did_not_check_are_still_checked(tenant, verified_domain):
    Suppression.objects.create(tenant=tenant, email="carol@example.org")
    unchecked = {"mail_from": "bounces@example.com", "rcpt_tos": ["carol@example.org"], "raw": RAW}
    checked = item(verified_domain, rcpt_tos=["alice@example.org"])
    for batch in ([checked, unchecked], [checked, unchecked, dict(unchecked)]):  # queried alone, preloaded
        outcomes = submit_raw_many(tenant=tenant, items=batch)
        assert isinstance(outcomes[0], SubmitResult)
        assert all(isinstance(o, RecipientSuppressed) for o in outcomes[1:])
