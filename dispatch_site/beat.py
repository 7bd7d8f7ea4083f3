"""Every periodic task, in one table. Keys are names; 'task' is the dotted task name."""
BEAT_SCHEDULE = {
    # Verified sending domains whose DNS re-check is due (DISPATCH_DOMAIN_RECHECK_MINUTES).
    "domains-recheck-due": {"task": "domains.tasks.recheck_due_domains", "schedule": 300.0},
    # Webhook deliveries whose next_attempt_at has come (retries, and anything the broker lost).
    "webhooks-sweep-due": {"task": "webhooks.tasks.sweep_due_webhooks", "schedule": 10.0, "options": {"queue": "events", "expires": 9}},
    # Webhook events and delivery logs past DISPATCH_WEBHOOK_EVENT_RETENTION_DAYS.
    "webhooks-prune-events": {"task": "webhooks.tasks.prune_events", "schedule": 3600.0, "options": {"queue": "events"}},
    # Email log entries past their plan's retention, deleted in small batches (docs/usage.md).
    "sending-delete-expired-emails": {"task": "sending.tasks.delete_expired_emails", "schedule": 900.0, "options": {"queue": "default"}},
    # Idempotency-Keys older than 24 h.
    "sending-prune-idempotency-keys": {"task": "sending.tasks.prune_idempotency_keys", "schedule": 3600.0, "options": {"queue": "default"}},
    # Compliance guard: flag / suspend tenants over the bounce or complaint thresholds (docs/usage.md).
    "tenants-compliance-sweep": {"task": "tenants.tasks.compliance_sweep", "schedule": 300.0, "options": {"queue": "default", "expires": 290}},
    # Inbound bounce / complaint reports unprocessed a minute after arrival (lost task); prunes old ones.
    "bounces-sweep-reports": {"task": "sending.bounces.tasks.sweep_inbound_reports", "schedule": 60.0, "options": {"queue": "default", "expires": 55}},
    # Re-enqueue recipients whose worker died (lease expired), whose task was lost, or whose retry is due.
    "delivery-sweep": {"task": "sending.delivery.tasks.sweep_delivery_queue", "schedule": 15.0, "options": {"queue": "default", "expires": 14}},
}
