"""Create the pipeline's Kafka topics from ``schemas.topics`` (idempotent).

Each process ensures the topics it touches at start-up, so a fresh cluster works without a
separate provisioning step and a typo cannot create a stray topic by auto-creation.
"""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import NewTopic

from runtime.errors import PermissionDenied, ServiceUnavailable
from runtime.kafka import KafkaConnection
from schemas.topics import ALL_TOPICS, Topic

log = logging.getLogger(__name__)


def ensure_topics(
    kafka: KafkaConnection, topics: tuple[Topic, ...] = ALL_TOPICS, replication: int = 1
) -> list[str]:
    """Create the missing topics; returns the names created."""
    admin = kafka.admin()
    try:
        existing = set(admin.list_topics(timeout=15).topics)
    except KafkaException as exc:
        raise ServiceUnavailable(
            f"Kafka does not answer at {kafka.bootstrap} ({exc.args[0].str()}); "
            "is it running? (`vigie stack status`, or VIGIE_KAFKA__BOOTSTRAP)") from None
    wanted = [
        NewTopic(t.name, num_partitions=t.partitions, replication_factor=replication,
                 config=dict(t.config))
        for t in topics
        if t.name not in existing
    ]
    if not wanted:
        return []
    created = []
    for name, future in admin.create_topics(wanted, request_timeout=30).items():
        try:
            future.result()
            created.append(name)
            log.info("created topic %s", name)
        except KafkaException as exc:
            # Another process created it between our list and our create: that is fine.
            if "TOPIC_ALREADY_EXISTS" in str(exc):
                continue
            if "AUTHORIZATION_FAILED" in str(exc):
                raise PermissionDenied(
                    f"topic {name} is missing (or not visible to this principal) and it may "
                    "not create it: topics are provisioned by the admin (`vigie stack up`, or "
                    "the cluster's operators)", source=kafka.bootstrap) from None
            raise
    return created


def end_offsets(kafka: KafkaConnection, topic: str) -> dict[int, int]:
    """High watermark of each partition of ``topic``: where the next record will land."""
    consumer = kafka.consumer("vigie-watermarks")
    try:
        partitions = consumer.list_topics(topic, timeout=15).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15)[1]
            for p in partitions
        }
    finally:
        consumer.close()


def start_group_at_end(kafka: KafkaConnection, group: str,
                       topics: list[str] | None = None) -> None:
    """Commit, for a new consumer ``group``, the current end offset of ``topics`` (default:
    every pipeline topic), so that its first members start exactly there.

    Benchmarks and drills run processors and sinks under fresh group ids on a shared cluster:
    ``auto.offset.reset=earliest`` would make them re-read the whole retained history, and
    ``latest`` would skip whatever is produced before the group's first fetch. Offsets may be
    committed for a group that has no member yet; members that join later resume from them.
    """
    names = topics if topics is not None else [t.name for t in ALL_TOPICS]
    offsets = [TopicPartition(name, p, hi) for name in names
               for p, hi in end_offsets(kafka, name).items()]
    consumer = kafka.consumer(group)
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()
