"""Prometheus metrics of the core: updates handled and how long they took, failures, messages
delivered. Each worker process has its own; Prometheus scrapes every worker's /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

UPDATES = Counter(
    "huizhen_updates_total",
    "Updates from patients, by channel and outcome (handled, duplicate, failed).",
    ["channel", "outcome"],
    registry=REGISTRY,
)
UPDATE_SECONDS = Histogram(
    "huizhen_update_seconds",
    "Time to handle one update in its transaction.",
    ["channel"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
DELIVERIES = Counter(
    "huizhen_deliveries_total",
    "Outgoing messages, by channel and outcome (sent, retry, failed, refused).",
    ["channel", "outcome"],
    registry=REGISTRY,
)
OUTBOX_PENDING = Gauge(
    "huizhen_outbox_pending",
    "Messages waiting to be delivered, by channel (read when scraped).",
    ["channel"],
    registry=REGISTRY,
)
