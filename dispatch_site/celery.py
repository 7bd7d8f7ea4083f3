"""The Celery app. The database is the source of truth for pending work; the broker carries IDs."""
import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dispatch_site.settings")

app = Celery("dispatch")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    task_default_queue="default",
    task_queues=(Queue("default"), Queue("delivery"), Queue("events")),
    task_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
# Periodic tasks: each app adds its entries in dispatch_site/beat.py (one place to read them all).
from .beat import BEAT_SCHEDULE  # noqa: E402

app.conf.beat_schedule = BEAT_SCHEDULE
app.autodiscover_tasks()
app.autodiscover_tasks(["sending.delivery", "sending.bounces"])  # nested packages: not found by the scan above
