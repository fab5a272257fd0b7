"""``vigie sink``: wire settings, templates, metrics and the loop together."""

from __future__ import annotations

import logging
from collections.abc import Callable

from runtime import metrics
from runtime.elasticsearch import make_client
from runtime.settings import Settings
from runtime.topics import ensure_topics
from schemas.indices import TOPIC_TO_INDEX
from schemas.topics import ALL_TOPICS
from sinks.consumer import Sink, SinkConfig, SinkStats

log = logging.getLogger(__name__)


def run_sink(settings: Settings, topics: list[str] | None = None,
             idle_exit_s: float | None = None,
             progress: Callable[[SinkStats], None] | None = None) -> SinkStats:
    # Only the topics it reads (it may see no other), and no index template: templates are
    # the setup step's (`vigie stack up`, deploy/local/provision.py), so the sink's role needs
    # no template privilege; documents written before they exist would get dynamic mappings.
    names = topics or list(TOPIC_TO_INDEX)
    ensure_topics(settings.kafka, tuple(t for t in ALL_TOPICS if t.name in names))
    es = make_client(settings)
    metrics.serve_metrics("sink", settings.metrics_port, host=settings.metrics_host,
                          tls=settings.metrics_tls)
    sink = Sink(SinkConfig.from_settings(settings, names), es)
    sink.install_signal_handlers()
    stats = sink.run(idle_exit_s=idle_exit_s, progress=progress)
    log.info("sink stopped: %d read, %d indexed, %d dead-lettered", stats.read, stats.indexed,
             stats.dead_lettered)
    return stats
