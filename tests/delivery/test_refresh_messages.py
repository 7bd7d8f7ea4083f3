"""recording.refresh_messages: the messages' aggregate status in SQL, as
sending.services.message_refresh_status computes it in Python."""
import itertools
import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from sending.delivery.recording import refresh_messages
from sending.models import Message, Recipient
from sending.services import aggregate_status
from tests.delivery.conftest import make_message

S = Recipient.Status
STATUSES = [S.QUEUED, S.SENDING, S.DEFERRED, S.DELIVERED, S.BOUNCED, S.FAILED, S.SUPPRESSED]


def _set(recipient, status, bounce_type=None, at=None):
    fields = {"status": status, "bounce_type": bounce_type}
    if status == S.DELIVERED:
        fields["delivered_at"] = at
    if status == S.BOUNCED:
        fields["bounced_at"] = at
    Recipient.objects.filter(pk=recipient.pk).update(**fields)


@pytest.mark.django_db
def test_every_mix_of_recipient_states_gives_the_status_aggregate_status_gives(tenant):
    base = timezone.now().replace(microsecond=0)
    expected = {}
    mixes = [mix for n in (1, 2, 3) for mix in itertools.combinations(STATUSES, n)]
    mixes += [(S.DELIVERED, S.DELIVERED), (S.QUEUED, S.QUEUED, S.SUPPRESSED), (S.BOUNCED, S.BOUNCED)]
    for number, mix in enumerate(mixes):
        message, recipients = make_message(tenant, [f"r{i}@dest.test" for i in range(len(mix))])
        counts, delivered, bounced, bounce_types = {}, None, None, set()
        for i, (recipient, status) in enumerate(zip(recipients, mix)):
            at = base - timedelta(seconds=number + i)
            # hard and soft bounces mixed across messages: hard wins whenever one is present
            bounce_type = None if status != S.BOUNCED else ("hard" if (number + i) % 3 == 0 else "soft")
            _set(recipient, status, bounce_type, at)
            counts[status] = counts.get(status, 0) + 1
            if status == S.DELIVERED:
                delivered = max(filter(None, [delivered, at]))
            if status == S.BOUNCED:
                bounced = max(filter(None, [bounced, at]))
                bounce_types.add(bounce_type)
        kind = "hard" if "hard" in bounce_types else ("soft" if bounce_types else None)
        expected[message.id] = (aggregate_status(counts), kind, delivered, bounced)

    refresh_messages(expected)

    got = {m.id: (m.status, m.bounce_type, m.delivered_at, m.bounced_at) for m in Message.objects.filter(id__in=expected)}
    assert got == expected


@pytest.mark.django_db
def test_only_the_given_messages_are_refreshed(tenant):
    one, [a] = make_message(tenant, ["a@dest.test"])
    two, [b] = make_message(tenant, ["b@dest.test"])
    _set(a, S.DELIVERED, at=timezone.now())
    _set(b, S.DELIVERED, at=timezone.now())

    refresh_messages({one.id})

    assert Message.objects.get(pk=one.pk).status == Message.Status.DELIVERED
    assert Message.objects.get(pk=two.pk).status == Message.Status.QUEUED


@pytest.mark.django_db(transaction=True)
def test_a_refresh_waits_for_a_concurrent_one_and_sees_what_it_committed(tenant):
    """The message row lock serialises refreshes: one that starts while another transaction holds
    the message (and has changed a recipient) must aggregate after that commit, not from a
    snapshot taken before it (which would write the stale status last)."""
    message, [recipient] = make_message(tenant, ["a@dest.test"])
    locked, done = threading.Event(), threading.Event()

    def other_worker():
        try:
            with transaction.atomic():
                list(Message.objects.select_for_update().filter(pk=message.pk))
                _set(recipient, S.DELIVERED, at=timezone.now())
                locked.set()
                done.wait(0.5)  # the refresh below is blocked on the lock meanwhile
        finally:
            connection.close()

    thread = threading.Thread(target=other_worker)
    thread.start()
    assert locked.wait(5)
    with transaction.atomic():
        refresh_messages({message.id})
    done.set()
    thread.join()

    assert Message.objects.get(pk=message.pk).status == Message.Status.DELIVERED
