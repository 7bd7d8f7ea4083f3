"""Every periodic task, in one table. Keys are names; 'task' is the dotted task name."""
BEAT_SCHEDULE = {}
