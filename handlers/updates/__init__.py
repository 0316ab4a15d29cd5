"""The path of one update: its transaction, delivery of the outbox, failures, metrics."""
