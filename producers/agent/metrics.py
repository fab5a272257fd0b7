"""Agent-specific Prometheus metrics (the shared ones are in :mod:`runtime.metrics`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

SPOOL_DEPTH = Gauge("vigie_agent_spool_records", "Records in the spool not yet acknowledged")
SPOOL_BYTES = Gauge("vigie_agent_spool_bytes", "Bytes of the spool on disk")
SPOOL_DROPPED = Counter("vigie_agent_spool_dropped_total",
                        "Records dropped because the spool was full", ["policy"])
MALFORMED = Counter("vigie_agent_malformed_total",
                    "Input the agent could not parse (frames, lines, records)",
                    ["source", "reason"])
INVALID = Counter("vigie_agent_invalid_total",
                  "Parsed events that fail the wire schema (still shipped: the national DLQ "
                  "keeps them with the reason)", ["source"])
ALREADY_DELIVERED = Counter("vigie_agent_already_delivered_total",
                            "Spooled records found already in Kafka after a crash (not resent)")
EPS_THROTTLED = Counter("vigie_agent_eps_throttled_seconds_total",
                        "Seconds the shipper waited because of the EPS cap")
FILTERED = Counter("vigie_agent_filtered_total",
                   "Windows events dropped at the source by its channel / event id filters",
                   ["source"])
