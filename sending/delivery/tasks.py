from celery import shared_task

from . import services


@shared_task(name="sending.delivery.tasks.deliver_recipients", queue="delivery", ignore_result=True)
def deliver_recipients(recipient_ids):
    services.deliver_recipients(recipient_ids=recipient_ids)


@shared_task(name="sending.delivery.tasks.sweep_delivery_queue", queue="default", ignore_result=True)
def sweep_delivery_queue():
    services.sweep()
