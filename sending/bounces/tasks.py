from celery import shared_task

from . import ingest


@shared_task(name="sending.bounces.tasks.process_inbound_report", queue="default", ignore_result=True)
def process_inbound_report(report_id):
    ingest.report_process(report_id=report_id)


@shared_task(name="sending.bounces.tasks.sweep_inbound_reports", queue="default", ignore_result=True)
def sweep_inbound_reports():
    ingest.reports_sweep()
