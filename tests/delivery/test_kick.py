"""Coalesced delivery kicks: submissions publish a delivery task only when none is outstanding,
and the task drains every due recipient, so nothing committed is left waiting for the sweeper."""
import os

import pytest
import redis

from sending.delivery import services
from sending.models import Recipient
from sending.services import enqueue_delivery
from tests.delivery.test_queue import broker, published  # noqa: F401 - fixture

S = Recipient.Status


@pytest.fixture
def kick_key(settings):
    settings.DISPATCH_DELIVERY_KICK_INTERVAL_MS = 60_000  # (250 ms in production) long enough for slow test machines
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    client.delete(services.KICK_KEY)
    yield client
    client.delete(services.KICK_KEY)


@pytest.mark.django_db
def test_one_task_is_published_while_a_kick_is_outstanding(broker, kick_key, queue_message):  # noqa: F811
    _, [first] = queue_message("a@dest.test")
    _, [second] = queue_message("b@dest.test")
    enqueue_delivery([first.id])
    enqueue_delivery([second.id])
    assert published(broker) == [("sending.delivery.tasks.deliver_recipients", [first.id])]
    assert kick_key.pttl(services.KICK_KEY) > 0  # expires by itself if its task is lost


@pytest.mark.django_db
def test_without_redis_every_submission_publishes(broker, queue_message, monkeypatch):  # noqa: F811
    monkeypatch.setattr(services._kick_redis, "client", lambda: None)
    _, [first] = queue_message("a@dest.test")
    _, [second] = queue_message("b@dest.test")
    enqueue_delivery([first.id])
    enqueue_delivery([second.id])
    assert [ids for _, ids in published(broker)] == [[first.id], [second.id]]


@pytest.mark.django_db(transaction=True)
def test_the_task_drains_rows_it_was_not_given_then_clears_the_kick(broker, kick_key, mx, queue_message, settings):  # noqa: F811
    from sending.delivery.tasks import deliver_recipients

    settings.DISPATCH_DELIVERY_BATCH_SIZE = 2  # several claims
    settings.DISPATCH_DELIVERY_DRAIN_PAUSE_MS = 0
    _, [first] = queue_message("a@dest.test")
    enqueue_delivery([first.id])  # publishes, sets the kick
    others = [queue_message(f"r{i}@dest.test")[1][0] for i in range(4)]
    enqueue_delivery([r.id for r in others])  # kick outstanding: nothing published
    assert len(published(broker)) == 1

    deliver_recipients([first.id])  # what the worker runs

    assert sorted(m.rcpt_tos[0] for m in mx.messages) == sorted(["a@dest.test"] + [f"r{i}@dest.test" for i in range(4)])
    assert set(Recipient.objects.values_list("status", flat=True)) == {S.DELIVERED}
    assert not kick_key.exists(services.KICK_KEY)
    # the next submission publishes again
    _, [late] = queue_message("late@dest.test")
    enqueue_delivery([late.id])
    assert published(broker)[-1] == ("sending.delivery.tasks.deliver_recipients", [late.id])


@pytest.mark.django_db(transaction=True)
def test_a_drain_that_runs_out_of_time_hands_over_to_a_new_task(broker, kick_key, mx, queue_message, settings):  # noqa: F811
    settings.DISPATCH_DELIVERY_BATCH_SIZE = 1
    for i in range(3):
        queue_message(f"r{i}@dest.test")
    assert services.drain(seconds=0) is False  # one batch, then time is up
    assert Recipient.objects.filter(status=S.DELIVERED).count() == 1
    services.publish_drain()
    assert published(broker) == [("sending.delivery.tasks.deliver_recipients", [])]
    assert services.drain() is True
    assert Recipient.objects.filter(status=S.DELIVERED).count() == 3
