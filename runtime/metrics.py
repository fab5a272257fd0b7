"""Prometheus metrics shared by the long-running processes.

One set of metric names with a ``stage`` label (simulator, agent, processor, sink) so that one
Grafana panel shows the whole flow and a gap between ``out`` of one stage and ``in`` of the
next is visible at a glance.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

#: Default metrics port per stage, so processes on one host do not collide.
DEFAULT_PORTS = {
    "simulator": 9401,
    "processor": 9402,
    "sink": 9403,
    "agent": 9404,
    "notifier": 9405,
}

EVENTS_IN = Counter("vigie_events_in_total", "Records read by a stage", ["stage", "topic"])
EVENTS_OUT = Counter("vigie_events_out_total", "Records written by a stage", ["stage", "topic"])
DEAD_LETTERS = Counter(
    "vigie_dead_letters_total", "Records refused, by reason", ["stage", "reason"]
)
ERRORS = Counter("vigie_errors_total", "Errors a stage recovered from", ["stage", "kind"])
BATCH_SECONDS = Histogram(
    "vigie_batch_seconds",
    "Time to process and acknowledge one batch",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

DEMO_MODE = Gauge("vigie_demo_mode", "1 when the processor trusts simulated agents (demo mode: "
                  "never in production)")
SIGNATURES_REQUIRED = Gauge("vigie_signatures_required",
                            "1 when the processor refuses records not signed by an enrolled "
                            "agent, 0 when verification is off (demo mode only)")
AGENTS = Gauge("vigie_agents", "Agents the processor trusts or knows revoked, by registry",
               ["registry", "status"])


def serve_metrics(stage: str, port: int = 0) -> int | None:
    """Expose /metrics on ``port`` (0: the stage's default). Returns the port, or None.

    A port already taken must not stop the pipeline: the process logs it and runs without
    metrics rather than losing events.
    """
    chosen = port or DEFAULT_PORTS.get(stage, 9400)
    try:
        start_http_server(chosen)
    except OSError as exc:
        log.warning("metrics not exposed: port %s unavailable (%s)", chosen, exc)
        return None
    log.info("metrics on http://localhost:%s/metrics", chosen)
    return chosen
