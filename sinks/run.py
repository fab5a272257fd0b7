"""``vigie sink``: wire settings, templates, metrics and the loop together."""

from __future__ import annotations

import logging
from collections.abc import Callable

from runtime import metrics
from runtime.elasticsearch import make_client
from runtime.settings import Settings
from runtime.topics import ensure_topics
from schemas.indices import TOPIC_TO_INDEX
from sinks.consumer import Sink, SinkConfig, SinkStats
from sinks.elasticsearch.templates import install_templates

log = logging.getLogger(__name__)


def run_sink(settings: Settings, topics: list[str] | None = None,
             idle_exit_s: float | None = None,
             progress: Callable[[SinkStats], None] | None = None) -> SinkStats:
    ensure_topics(settings.kafka)
    es = make_client(settings)
    install_templates(es)
    metrics.serve_metrics("sink", settings.metrics_port, host=settings.metrics_host,
                          tls=settings.metrics_tls)
    sink = Sink(SinkConfig.from_settings(settings, topics or list(TOPIC_TO_INDEX)), es)
    sink.install_signal_handlers()
    stats = sink.run(idle_exit_s=idle_exit_s, progress=progress)
    log.info("sink stopped: %d read, %d indexed, %d dead-lettered", stats.read, stats.indexed,
             stats.dead_lettered)
    return stats
