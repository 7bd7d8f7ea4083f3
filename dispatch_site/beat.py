"""Every periodic task, in one table. Keys are names; 'task' is the dotted task name."""
BEAT_SCHEDULE = {
    # Webhook deliveries whose next_attempt_at has come (retries, and anything the broker lost).
    "webhooks-sweep-due": {"task": "webhooks.tasks.sweep_due_webhooks", "schedule": 10.0, "options": {"queue": "events"}},
}
