"""Per-host politeness in Redis: connection cap, back-off, and failing open without Redis."""
from sending.delivery import politeness


def test_the_connection_cap_is_shared_and_slots_are_released(settings):
    settings.DISPATCH_OUTBOUND_MAX_CONNECTIONS_PER_HOST = 2
    first, second = politeness.acquire_slot("mx.cap.test"), politeness.acquire_slot("mx.cap.test")
    assert first and second and politeness.acquire_slot("mx.cap.test") is None
    assert politeness.acquire_slot("mx.other.test")  # per host
    politeness.release_slot("mx.cap.test", first)
    assert politeness.acquire_slot("mx.cap.test")


def test_a_slot_of_a_dead_worker_frees_itself(settings, monkeypatch):
    settings.DISPATCH_OUTBOUND_MAX_CONNECTIONS_PER_HOST = 1
    assert politeness.acquire_slot("mx.dead.test")
    later = politeness.time.time() + politeness.SLOT_TTL + 1
    monkeypatch.setattr(politeness.time, "time", lambda: later)
    assert politeness.acquire_slot("mx.dead.test")


def test_back_off_expires(settings):
    politeness.back_off("mx.busy.test", seconds=30)
    assert 0 < politeness.backing_off("mx.busy.test") <= 30
    assert politeness.backing_off("mx.calm.test") == 0


def test_without_redis_everything_fails_open(monkeypatch, settings):
    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    # (the Redis client is per URL, so this URL gets a fresh one)
    started = politeness.time.monotonic()
    assert politeness.acquire_slot("mx.any.test")
    politeness.back_off("mx.any.test")
    assert politeness.backing_off("mx.any.test") == 0
    politeness.refresh_slot("mx.any.test", "token")
    politeness.release_slot("mx.any.test", "token")
    assert politeness.time.monotonic() - started < 1  # one quick failure, then Redis is left alone a while
