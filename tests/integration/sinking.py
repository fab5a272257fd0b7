"""Run the real sink in-process on a consumer group of its own, starting at the topics' end.

Other sessions share this Kafka and its ``vigie-sink`` group; a test that must see *its* records
go through *this* code uses a fresh group whose offsets are first committed at the current
end of each topic, so the sink reads only what the test produces afterwards.
"""

from __future__ import annotations

import uuid

from elasticsearch import Elasticsearch

from runtime.kafka import KafkaConnection
from runtime.settings import Settings
from runtime.topics import start_group_at_end
from schemas.routing import Headers
from sinks.consumer import Sink, SinkConfig, SinkStats


def fresh_group(kafka: KafkaConnection, topics: list[str]) -> str:
    """A new consumer group that starts at the current end of ``topics``."""
    group = f"vigie-sink-test-{uuid.uuid4().hex[:12]}"
    start_group_at_end(kafka, group, topics)
    return group


def produce(kafka: KafkaConnection, topic: str, records: list[tuple[bytes, bytes]],
            headers: list[Headers | None] | None = None) -> list[tuple[int, int]]:
    """Produce (key, value) records in order, each with its ``headers`` if given; returns
    their (partition, offset)."""
    producer = kafka.producer()
    positions: list[tuple[int, int]] = []
    errors: list[str] = []

    def done(err, msg) -> None:  # type: ignore[no-untyped-def]
        if err is not None:
            errors.append(str(err))
        else:
            positions.append((msg.partition(), msg.offset()))

    for n, (key, value) in enumerate(records):
        producer.produce(topic, value=value, key=key, on_delivery=done,
                         headers=headers[n] if headers else None)
    producer.flush(60)
    assert not errors and len(positions) == len(records), errors
    return positions


def run_sink(settings: Settings, es: Elasticsearch, topics: list[str], group: str, *,
             idle_s: float = 8.0, max_docs: int | None = None) -> SinkStats:
    """The sink until nothing new arrived for ``idle_s`` seconds; then it flushes and commits."""
    sink = Sink(SinkConfig.from_settings(settings, topics, group=group, max_docs=max_docs,
                                         max_wait_s=0.5), es)
    return sink.run(idle_exit_s=idle_s)
