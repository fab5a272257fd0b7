"""The sink: Kafka topics → Elasticsearch, committing offsets only after Elasticsearch acks.

Loop: fill a batch (bounded by documents, bytes and time), bulk-index it, send per-document
rejections to the dead-letter index, retry what Elasticsearch could not take now, and only
then commit the batch's offsets. While Elasticsearch is unreachable the partitions are paused
(the consumer stays in its group) and nothing is committed; after a crash, uncommitted records
are read again and overwrite themselves (deterministic ``_id``).
"""

from __future__ import annotations

import base64
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, TypeGuard

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from elastic_transport import ConnectionError as EsConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, Elasticsearch
from prometheus_client import Counter

from runtime import metrics
from runtime.backoff import Backoff
from runtime.kafka import KafkaConnection
from runtime.settings import Settings
from schemas import indices
from schemas.deadletter import DeadLetter, KafkaCoordinates, Reason
from schemas.identity import dead_letter_id
from schemas.routing import ReceivedHeaders
from sinks.elasticsearch.bulk import Doc
from sinks.elasticsearch.upsert import write
from sinks.routing import Unroutable, route

log = logging.getLogger(__name__)
STAGE = "sink"


class Record(Protocol):
    """A record the consumer delivered. ``Message`` types its topic, partition and offset as
    optional because one can be built by hand; librdkafka sets all three on every record it
    delivers (a ``Message`` whose ``error()`` is None)."""

    def topic(self) -> str: ...
    def partition(self) -> int: ...
    def offset(self) -> int: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> ReceivedHeaders | None: ...


def _delivered(message: Message) -> TypeGuard[Record]:
    """A record rather than an error event (partition EOF, broker down...)."""
    return message.error() is None


class _Abandoned(Exception):
    """SIGTERM arrived while Elasticsearch could not take the batch: give up on it, uncommitted
    (it will be re-read), instead of retrying until the supervisor's SIGKILL.

    Private control flow, deliberately not a ``VigieError``: raised and caught inside one
    flush of this consumer, it never reaches a caller or the command line."""


@dataclass(frozen=True)
class SinkConfig:
    """What one sink reads and how it batches; the values come from :class:`Settings`
    (:meth:`from_settings`), whose defaults are the only ones."""

    kafka: KafkaConnection
    group: str
    topics: list[str]
    max_docs: int
    max_bytes: int
    max_wait_s: float

    @classmethod
    def from_settings(cls, settings: Settings, topics: list[str], *, group: str | None = None,
                      max_docs: int | None = None, max_wait_s: float | None = None) -> SinkConfig:
        """The sink of ``settings`` on ``topics``; tests and benchmarks may narrow the group,
        batch size or wait."""
        return cls(
            kafka=settings.kafka,
            group=group or settings.sink_group,
            topics=topics,
            max_docs=max_docs if max_docs is not None else settings.sink_batch_max_docs,
            max_bytes=settings.sink_batch_max_bytes,
            max_wait_s=max_wait_s if max_wait_s is not None else settings.sink_batch_max_wait_s,
        )


@dataclass
class SinkStats:
    read: int = 0
    indexed: int = 0
    dead_lettered: int = 0
    superseded: int = 0
    retried: int = 0
    batches: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)


def _retryable(exc: ApiError) -> bool:
    """429 (back-pressure) and 5xx (a node restarting, shards recovering) pass with time;
    a 4xx on a whole request is a bug that retrying would only hide."""
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and (status == 429 or status >= 500)


#: The sink's consumer beyond the connection (``bench/sink.py`` reads with the same).
CONSUMER_SETTINGS: dict[str, str | int] = {
    "auto.offset.reset": "earliest",
    "max.poll.interval.ms": 600_000,
    "fetch.max.bytes": 64 * 1024 * 1024,
    "partition.assignment.strategy": "cooperative-sticky",
    "isolation.level": "read_committed",  # never what an aborted transaction wrote
}


class Sink:
    """Runs until ``stop()`` (SIGTERM/SIGINT), then flushes and commits what it holds."""

    def __init__(self, config: SinkConfig, es: Elasticsearch) -> None:
        self.config = config
        self.es = es
        self.stats = SinkStats()
        self._stopping = False
        self._batch: list[Record] = []
        self._batch_bytes = 0
        self._read_counters: dict[str, Counter] = {}
        self._consumer = config.kafka.consumer(config.group, **CONSUMER_SETTINGS)

    def stop(self, *_: object) -> None:
        self._stopping = True

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self, idle_exit_s: float | None = None,
            progress: Callable[[SinkStats], None] | None = None) -> SinkStats:
        """Consume until stopped, or until nothing arrived for ``idle_exit_s`` seconds."""
        self._consumer.subscribe(self.config.topics, on_revoke=self._on_revoke)
        first_at: float | None = None
        last_data = time.monotonic()
        try:
            while not self._stopping:
                room = self.config.max_docs - len(self._batch)
                wait = self.config.max_wait_s
                if first_at is not None:
                    wait = max(0.0, first_at + self.config.max_wait_s - time.monotonic())
                for message in self._consumer.consume(num_messages=max(1, room), timeout=wait):
                    if not _delivered(message):
                        metrics.ERRORS.labels(STAGE, "kafka").inc()
                        log.warning("Kafka error: %s", message.error())
                        continue
                    self._add(message)
                    first_at = first_at or time.monotonic()
                    last_data = time.monotonic()
                full = (len(self._batch) >= self.config.max_docs
                        or self._batch_bytes >= self.config.max_bytes)
                due = first_at is not None and (
                    time.monotonic() - first_at >= self.config.max_wait_s)
                if self._batch and (full or due):
                    self.flush()
                    first_at = None
                    if progress:
                        progress(self.stats)
                if idle_exit_s is not None and time.monotonic() - last_data > idle_exit_s:
                    break
            self.flush()
        finally:
            self._consumer.close()
        return self.stats

    def _add(self, message: Record) -> None:
        self._batch.append(message)
        self._batch_bytes += len(message.value() or b"")
        self.stats.read += 1
        topic = message.topic()
        counter = self._read_counters.get(topic)
        if counter is None:  # a labelled child per topic, looked up once, not per record
            counter = self._read_counters[topic] = metrics.EVENTS_IN.labels(STAGE, topic)
        counter.inc()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Write what we hold before another member takes these partitions over.
        if self._batch:
            self.flush()

    def flush(self) -> None:
        """Index the batch (with retries and dead letters), then commit its offsets."""
        if not self._batch:
            return
        began = time.perf_counter()
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        docs: list[Doc] = []
        letters: list[Doc] = []
        for message in batch:
            try:
                docs.append(route(message.topic(), message.value(), message.headers(),
                                  ref=message))
            except Unroutable as exc:
                letters.append(self._letter(message, Reason.SCHEMA, str(exc)))
        try:
            letters += self._index_all(docs)
            if letters:
                self._index_all(letters, dead_letters=True)
                self.stats.dead_lettered += len(letters)
        except _Abandoned:
            # Drop what arrived meanwhile too: committing any of it could move an offset past
            # the abandoned records.
            log.warning("stopping while Elasticsearch is unavailable: %d records left "
                        "uncommitted, they will be read again", len(batch) + len(self._batch))
            self._batch, self._batch_bytes = [], 0
            return
        self._commit(batch)
        self.stats.batches += 1
        metrics.BATCH_SECONDS.labels(STAGE).observe(time.perf_counter() - began)

    def _index_all(self, docs: list[Doc], dead_letters: bool = False) -> list[Doc]:
        """Index until every doc is written or rejected; returns dead letters for rejects."""
        backoff = Backoff()
        rejects: list[Doc] = []
        paused = False
        while docs:
            try:
                # Incidents (versioned) are upserted; everything else is one plain bulk.
                outcome = write(self.es, docs)
            except (EsConnectionError, ConnectionTimeout, ApiError) as exc:
                if isinstance(exc, ApiError) and not _retryable(exc):
                    raise
                metrics.ERRORS.labels(STAGE, "elasticsearch").inc()
                if self._stopping:
                    raise _Abandoned from exc
                paused = paused or self._pause()
                delay = backoff.next_delay()
                log.warning("Elasticsearch unavailable (%s); retrying %d docs in %.1f s",
                            type(exc).__name__, len(docs), delay)
                self._wait(delay)
                continue
            self.stats.superseded += len(outcome.superseded)
            self._count_written(outcome.written)
            for doc, reason in outcome.rejected:
                if dead_letters:
                    # A dead letter refused by its own index: nowhere safer to put it.
                    log.error("dead letter %s refused by Elasticsearch: %s", doc.id, reason)
                    metrics.ERRORS.labels(STAGE, "dead_letter_rejected").inc()
                    continue
                rejects.append(self._letter(doc.ref, Reason.INDEX_REJECTED, reason))
            docs = outcome.retry
            if docs:
                if self._stopping:
                    raise _Abandoned
                self.stats.retried += len(docs)
                paused = paused or self._pause()
                self._wait(backoff.next_delay())
        if paused:
            self._consumer.resume(self._consumer.assignment())
        return rejects

    def _count_written(self, written: list[Doc]) -> None:
        """Stats and metrics once per topic, not per document (a labelled counter's lookup
        per document was a visible share of the sink's CPU)."""
        self.stats.indexed += len(written)
        per_topic: dict[str, int] = {}
        for doc in written:
            topic = doc.ref.topic()
            per_topic[topic] = per_topic.get(topic, 0) + 1
        for topic, count in per_topic.items():
            self.stats.by_topic[topic] = self.stats.by_topic.get(topic, 0) + count
            metrics.EVENTS_OUT.labels(STAGE, topic).inc(count)

    def _pause(self) -> bool:
        self._consumer.pause(self._consumer.assignment())
        return True

    def _wait(self, seconds: float) -> None:
        """Sleep while serving the consumer, so it keeps its group membership."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            message = self._consumer.poll(min(0.2, max(0.0, end - time.monotonic())))
            if message is not None and _delivered(message):
                self._add(message)  # a partition assigned while paused: keep it for later

    def _letter(self, message: Record, reason: Reason, detail: str) -> Doc:
        value = message.value() or b""
        key = message.key()
        letter = DeadLetter(
            id=dead_letter_id(message.topic(), message.partition(), message.offset()),
            timestamp=datetime.now(UTC),
            stage=STAGE,
            reason=reason,
            detail=detail[:8000],
            origin=KafkaCoordinates(topic=message.topic(), partition=message.partition(),
                          offset=message.offset(),
                          key=key.decode("utf-8", "backslashreplace")[:256] if key else None),
            original_b64=base64.b64encode(value).decode("ascii"),
            original_size=len(value),
        )
        metrics.DEAD_LETTERS.labels(STAGE, reason.value).inc()
        return Doc(indices.DLQ.index_for(letter.timestamp), letter.id, letter.to_json_bytes(),
                   ref=message)

    def _commit(self, batch: list[Record]) -> None:
        highest: dict[tuple[str, int], int] = {}
        for message in batch:
            tp = (message.topic(), message.partition())
            highest[tp] = max(highest.get(tp, -1), message.offset())
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in highest.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # Typically a rebalance took the partitions: the new owner re-reads and
            # overwrites the same _ids. Nothing is lost, at worst written twice over itself.
            metrics.ERRORS.labels(STAGE, "commit").inc()
            log.warning("offset commit failed (%s); records will be re-read", exc)
