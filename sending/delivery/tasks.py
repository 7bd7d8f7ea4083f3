from celery import shared_task
from django.db import close_old_connections

from . import services


@shared_task(name="sending.delivery.tasks.deliver_recipients", queue="delivery", ignore_result=True)
def deliver_recipients(recipient_ids):
    close_old_connections()  # connections are reused across tasks (CELERY_DB_REUSE_MAX)
    if recipient_ids:
        services.deliver_recipients(recipient_ids=recipient_ids)
    # Then keep going while anything is due: submissions publish a task only when no kick is
    # outstanding (services.kick_needed), so this task is what delivers their rows.
    if not services.drain():
        services.publish_drain()


@shared_task(name="sending.delivery.tasks.sweep_delivery_queue", queue="default", ignore_result=True)
def sweep_delivery_queue():
    close_old_connections()
    services.sweep()
