from celery import shared_task

from . import services


@shared_task(name="webhooks.tasks.deliver_webhook", queue="events", ignore_result=True)
def deliver_webhook(delivery_id):
    services.delivery_attempt(delivery_id=delivery_id)


@shared_task(name="webhooks.tasks.sweep_due_webhooks", queue="events", ignore_result=True)
def sweep_due_webhooks():
    services.deliveries_enqueue_due()


@shared_task(name="webhooks.tasks.prune_events", queue="events", ignore_result=True)
def prune_events():
    services.events_prune()
