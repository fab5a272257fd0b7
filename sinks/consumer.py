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
from sinks.elasticsearch.bulk import Doc, Lines
from sinks.elasticsearch.upsert import write
from sinks.routing import Record, route_all

log = logging.getLogger(__name__)
STAGE = "sink"


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
    """Runs until ``stop()`` (SIGTERM/SIGINT), then flushes and commits what it holds.

    Per record, the work is kept to a few C calls and list appends (issue 14 asks for at
    most 10 µs of CPU per event, librdkafka and the Elasticsearch client included): records
    are taken a ``consume()`` call at a time, routed from their headers straight into bulk
    lines (``sinks.routing.route_all``), and counted per topic, not per record."""

    def __init__(self, config: SinkConfig, es: Elasticsearch) -> None:
        self.config = config
        self.es = es
        self.stats = SinkStats()
        self._stopping = False
        self._batch: list[Record] = []
        self._batch_bytes = 0
        self._batch_topics: dict[str, int] = {}  # records of the batch per topic
        self._read_counters: dict[str, Counter] = {}
        self._written_counters: dict[str, Counter] = {}
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
                messages = self._consumer.consume(num_messages=max(1, room), timeout=wait)
                if messages and self._take(messages):
                    last_data = time.monotonic()
                    first_at = first_at or last_data
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

    def _take(self, messages: list[Message]) -> int:
        """Add the records among ``messages`` (one ``consume()``'s worth) to the batch; error
        events (partition EOF, broker down...) are logged. Returns the records added."""
        batch = self._batch
        before = len(batch)
        size = 0
        topics = self._batch_topics
        read: dict[str, int] = {}
        for message in messages:
            if message.error() is not None:
                metrics.ERRORS.labels(STAGE, "kafka").inc()
                log.warning("Kafka error: %s", message.error())
                continue
            value = message.value()
            if value:
                size += len(value)
            topic: str = message.topic()  # type: ignore[assignment]  # set: delivered
            read[topic] = read.get(topic, 0) + 1
            batch.append(message)  # type: ignore[arg-type]  # delivered: a Record
        for topic, count in read.items():
            topics[topic] = topics.get(topic, 0) + count
            counter = self._read_counters.get(topic)
            if counter is None:  # a labelled child per topic, looked up once
                counter = self._read_counters[topic] = metrics.EVENTS_IN.labels(STAGE, topic)
            counter.inc(count)
        self._batch_bytes += size
        added = len(batch) - before
        self.stats.read += added
        return added

    def _add(self, message: Message) -> None:
        """One record (a consumer's ``poll()``); see :meth:`_take`."""
        self._take([message])

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Write what we hold before another member takes these partitions over.
        if self._batch:
            self.flush()

    def flush(self) -> None:
        """Index the batch (with retries and dead letters), then commit its offsets."""
        if not self._batch:
            return
        began = time.perf_counter()
        batch, topics = self._batch, self._batch_topics
        self._batch, self._batch_bytes, self._batch_topics = [], 0, {}
        routed = route_all(batch)
        letters = [self._letter(record, Reason.SCHEMA, why)
                   for record, why in routed.unroutable]
        unwritten: list[Doc] = []  # superseded, or dead letters Elasticsearch refused
        try:
            letters += self._index_all(routed.docs, unwritten, routed.lines)
            if letters:
                self._index_all(letters, unwritten, dead_letters=True)
                self.stats.dead_lettered += len(letters)
        except _Abandoned:
            # Drop what arrived meanwhile too: committing any of it could move an offset past
            # the abandoned records.
            log.warning("stopping while Elasticsearch is unavailable: %d records left "
                        "uncommitted, they will be read again", len(batch) + len(self._batch))
            self._batch, self._batch_bytes, self._batch_topics = [], 0, {}
            return
        self._commit(batch)
        self._count_written(topics, unwritten)
        self.stats.batches += 1
        metrics.BATCH_SECONDS.labels(STAGE).observe(time.perf_counter() - began)

    def _index_all(self, docs: list[Doc], unwritten: list[Doc], lines: Lines | None = None,
                   dead_letters: bool = False) -> list[Doc]:
        """Index until every doc (and line) is written, superseded or rejected; returns dead
        letters for the rejected, adds the superseded (and refused dead letters) to
        ``unwritten``."""
        backoff = Backoff()
        rejects: list[Doc] = []
        paused = False
        while docs or lines:
            try:
                # Incidents (versioned) are upserted; everything else is one plain bulk.
                outcome = write(self.es, docs, lines)
            except (EsConnectionError, ConnectionTimeout, ApiError) as exc:
                if isinstance(exc, ApiError) and not _retryable(exc):
                    raise
                metrics.ERRORS.labels(STAGE, "elasticsearch").inc()
                if self._stopping:
                    raise _Abandoned from exc
                paused = paused or self._pause()
                delay = backoff.next_delay()
                log.warning("Elasticsearch unavailable (%s); retrying %d docs in %.1f s",
                            type(exc).__name__, len(docs) + len(lines or ()), delay)
                self._wait(delay)
                continue
            lines = None  # sent: what must go again came back as docs (outcome.retry)
            self.stats.superseded += len(outcome.superseded)
            unwritten += outcome.superseded
            for doc, reason in outcome.rejected:
                if dead_letters:
                    # A dead letter refused by its own index: nowhere safer to put it.
                    log.error("dead letter %s refused by Elasticsearch: %s", doc.id, reason)
                    metrics.ERRORS.labels(STAGE, "dead_letter_rejected").inc()
                    unwritten.append(doc)
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

    def _count_written(self, topics: dict[str, int], unwritten: list[Doc]) -> None:
        """Stats and metrics once per topic, not per document: every record of the batch
        was written (to its index, or as a dead letter) but the ``unwritten`` (whose ``ref``
        is the record). Counting what was acknowledged document by document cost a visible
        share of the sink's CPU."""
        written = dict(topics)
        for doc in unwritten:
            topic = doc.ref.topic()
            written[topic] = written.get(topic, 0) - 1
        for topic, count in written.items():
            if count <= 0:
                continue
            self.stats.indexed += count
            self.stats.by_topic[topic] = self.stats.by_topic.get(topic, 0) + count
            counter = self._written_counters.get(topic)
            if counter is None:
                counter = self._written_counters[topic] = metrics.EVENTS_OUT.labels(STAGE,
                                                                                    topic)
            counter.inc(count)

    def _pause(self) -> bool:
        self._consumer.pause(self._consumer.assignment())
        return True

    def _wait(self, seconds: float) -> None:
        """Sleep while serving the consumer, so it keeps its group membership."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            message = self._consumer.poll(min(0.2, max(0.0, end - time.monotonic())))
            if message is not None:
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
        """Commit, for each partition, past the highest offset of the batch."""
        highest: dict[tuple[str, int], int] = {}
        get = highest.get
        for message in batch:
            tp = (message.topic(), message.partition())
            offset = message.offset()
            if offset > get(tp, -1):
                highest[tp] = offset
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in highest.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # Typically a rebalance took the partitions: the new owner re-reads and
            # overwrites the same _ids. Nothing is lost, at worst written twice over itself.
            metrics.ERRORS.labels(STAGE, "commit").inc()
            log.warning("offset commit failed (%s); records will be re-read", exc)
