"""Shipping the spool to Kafka: idempotent producer, EPS cap, backpressure, clean stop.

- Producer: the project's idempotent, ``acks=all``, lz4 configuration
  (:meth:`runtime.kafka.KafkaConnection.producer`), key = establishment id, signature headers.
- Sequence: each record is signed, when it leaves, with its spool sequence number
  (``vigie-sequence``, see :mod:`producers.signing`): durable, rising, and the same when a
  record is sent again, so the processor can tell a copy (``replayed``) from a new record.
  It and the restart check's consumer are both built from the agent's one
  :class:`~runtime.kafka.KafkaConnection`, so TLS/SASL apply to every client.
- Order and acknowledgement: records are read from the spool in order; the spool is
  acknowledged up to the highest sequence number below which the broker confirmed everything.
  A failed delivery (e.g. the broker stayed away longer than ``message.timeout.ms``) is sent
  again; the others are not, so a failure does not duplicate what did arrive.
- EPS cap: a token bucket (``eps`` per second, one second of burst) limits what leaves the
  hospital; a flood waits in the spool instead of saturating the link.
- Backpressure: at most ``max_in_flight`` records wait for the broker; beyond that the shipper
  stops reading the spool, which then grows on disk (bounded, see :mod:`.spool`).
- Restart after a crash: records the spool holds but had not marked acknowledged may already
  be in Kafka (acknowledged just before the crash). Before sending anything, the shipper reads
  back this agent's records from ``events.raw`` after the last acknowledged offset and skips
  those already there: SIGKILL does not duplicate events. Positions are saved after the spool
  append, so a kill between the two makes the first step after the restart spool that batch
  again, under the same event ids: among the records spooled before the check, an id is sent
  once (seen in a CI run: 40 duplicates of 8,000 after two SIGKILLs).
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import json
import logging
import time
from collections import deque
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from producers.agent import metrics as agent_metrics
from producers.agent.spool import Spool, SpoolRecord
from producers.signing import Signer
from runtime import metrics
from runtime.kafka import KafkaConnection
from schemas.enrolment import HEADER_AGENT

log = logging.getLogger(__name__)


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved; ``rate`` 0 means unlimited."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(rate, 1.0)
        self.tokens = self.burst
        self.stamp = time.monotonic()

    def take(self, wanted: int) -> int:
        if self.rate <= 0:
            return wanted
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        granted = min(wanted, int(self.tokens))
        self.tokens -= granted
        return granted


class Shipper:
    def __init__(self, spool: Spool, *, kafka: KafkaConnection, topic: str, signer: Signer,
                 eps: float = 0, max_in_flight: int = 50_000,
                 producer_overrides: dict[str, Any] | None = None) -> None:
        """``producer_overrides``: librdkafka tuning of the producer (timeouts, logging);
        the connection itself (address, TLS, SASL) comes from ``kafka`` only."""
        self.spool = spool
        self.topic = topic
        self.kafka = kafka
        self.signer = signer
        self.agent_id = signer.agent_id
        self._agent_header = signer.agent_id.encode()
        self.bucket = TokenBucket(eps)
        self.max_in_flight = max_in_flight
        self.overrides = dict(producer_overrides or {})
        self._error_logged = 0.0
        self.producer = kafka.producer(**{"message.max.bytes": 4 * 1024 * 1024,
                                          "linger.ms": 50, **self.overrides,
                                          "error_cb": self._on_error})
        self.in_flight: dict[int, SpoolRecord] = {}
        self._heap: list[int] = []
        self._resend: deque[SpoolRecord] = deque()
        self._skip: set[str] | None = None  # event ids found in Kafka after a crash
        self._skip_upto = 0
        # Ids handed to Kafka among the records spooled before the restart check: a crash
        # between spooling a batch and saving the file position makes the first step after the
        # restart read (and spool) that batch again, under the same ids.
        self._handed_ids: set[str] = set()
        self.reconciled = spool.depth == 0
        self.sent = 0
        self.delivered = 0
        self.failed = 0
        self.last_error: str | None = None
        self._out = metrics.EVENTS_OUT.labels("agent", topic)
        self._counted = 0  # deliveries already added to ``_out``: once per pump, not per event
        self._last_partition: tuple[int, int] | None = None

    # --- callbacks ---------------------------------------------------------------------------
    def _on_error(self, err: KafkaError) -> None:
        """librdkafka reconnects by itself; say so once per 10 s, not per attempt."""
        self.last_error = err.str()
        metrics.ERRORS.labels("agent", "kafka").inc()
        now = time.monotonic()
        if now - self._error_logged >= 10:
            self._error_logged = now
            log.warning("Kafka unreachable or failing (%s); events wait in the spool "
                        "(%d records)", err.str(), self.spool.depth)

    def _delivered(self, seq: int, err: KafkaError | None, msg: Message) -> None:
        record = self.in_flight.get(seq)
        if record is None:
            return
        if err is not None:
            self.failed += 1
            self.last_error = err.str()
            metrics.ERRORS.labels("agent", "delivery").inc()
            log.warning("record %s not delivered (%s): will be sent again", seq, err.str())
            self._resend.append(record)
            return
        del self.in_flight[seq]
        self.delivered += 1
        partition, offset = msg.partition(), msg.offset()
        if partition is not None and offset is not None:  # always set on a delivered record
            self._last_partition = (partition, offset)

    def _advance(self) -> None:
        if self.delivered != self._counted:
            self._out.inc(self.delivered - self._counted)
            self._counted = self.delivered
        while self._heap and self._heap[0] not in self.in_flight:
            heapq.heappop(self._heap)
        upto = (self._heap[0] - 1) if self._heap else self.spool.cursor - 1
        if upto > self.spool.acked:
            part = self._last_partition
            self.spool.ack(upto, *(part if part else (None, None)))

    # --- sending -----------------------------------------------------------------------------
    def _produce(self, record: SpoolRecord) -> bool:
        # Signed with its spool number: the same headers each time it is sent.
        headers: list[tuple[str, str | bytes | None]] = list(
            self.signer.headers(record.value, record.seq))
        try:
            self.producer.produce(
                self.topic, value=record.value, key=record.key, headers=headers,
                on_delivery=functools.partial(self._delivered, record.seq))
        except BufferError:
            return False
        return True

    def pump(self, max_records: int = 5000) -> int:
        """Send what the EPS cap and the in-flight bound allow; serve callbacks. Returns the
        number of records handed to the producer."""
        self.producer.poll(0)
        if not self.reconciled:
            self._reconcile()
            if not self.reconciled:
                return 0
        room = min(max_records, self.max_in_flight - len(self.in_flight) + len(self._resend))
        granted = self.bucket.take(max(0, room))
        if room > 0 and granted == 0:
            agent_metrics.EPS_THROTTLED.inc(0.01)
        handed = 0
        while self._resend and handed < granted:
            record = self._resend.popleft()
            if not self._produce(record):
                self._resend.appendleft(record)
                break
            handed += 1
        if handed < granted:
            for record in self.spool.read(granted - handed):
                if record.seq <= self._skip_upto:
                    if (self._skip and record.event_id in self._skip) or \
                            record.event_id in self._handed_ids:
                        agent_metrics.ALREADY_DELIVERED.inc()
                        continue
                    self._handed_ids.add(record.event_id)
                elif self._handed_ids:
                    self._handed_ids = set()  # past the records of before the restart
                self.in_flight[record.seq] = record
                heapq.heappush(self._heap, record.seq)
                while not self._produce(record):
                    self.producer.poll(0.05)
                handed += 1
        self.sent += handed
        self.producer.poll(0)
        self._advance()
        return handed

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for in-flight records; returns how many are still
        unacknowledged (they stay in the spool for the next start)."""
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            if self._resend:
                self.pump(0)
            self.producer.flush(min(1.0, max(0.0, deadline - time.monotonic())))
            self._advance()
        self._advance()
        self.spool.save_state()
        return len(self.in_flight)

    # --- crash reconciliation ------------------------------------------------------------------
    def _reconcile(self) -> None:
        """Find which unacknowledged spool records already reached Kafka (see module doc)."""
        try:
            found = self._ids_in_kafka()
        except KafkaException as exc:
            self.last_error = str(exc)
            log.warning("cannot check Kafka for records sent before the restart (%s); "
                        "retrying before sending anything", exc)
            return
        self._skip = found
        self._skip_upto = self.spool.next_seq - 1
        self.reconciled = True
        if found:
            log.info("%d spooled records were already in Kafka before the restart: not resent",
                     len(found))

    def _ids_in_kafka(self) -> set[str]:
        consumer = self.kafka.consumer("vigie-agent-check", **{"enable.partition.eof": True})
        try:
            meta = consumer.list_topics(self.topic, timeout=10)
            topic = meta.topics.get(self.topic)
            if topic is None or topic.error is not None:
                raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
            if self.spool.partition is not None and self.spool.offset is not None:
                starts = [TopicPartition(self.topic, self.spool.partition, self.spool.offset + 1)]
            else:
                first = self.spool.read(1)
                self.spool.cursor = self.spool.acked + 1
                since = (first[0].appended_ms if first else int(time.time() * 1000)) - 10_000
                wanted = [TopicPartition(self.topic, p, since) for p in topic.partitions]
                starts = consumer.offsets_for_times(wanted, timeout=10)
            ends: dict[int, int] = {}
            assign: list[TopicPartition] = []
            for tp in starts:
                high = consumer.get_watermark_offsets(TopicPartition(self.topic, tp.partition),
                                                      timeout=10)[1]
                start = tp.offset if tp.offset >= 0 else high
                if start < high:
                    ends[tp.partition] = high
                    assign.append(TopicPartition(self.topic, tp.partition, start))
            found: set[str] = set()
            if not assign:
                return found
            consumer.assign(assign)
            deadline = time.monotonic() + 120
            while ends and time.monotonic() < deadline:
                msg = consumer.poll(1.0)
                if msg is None:
                    continue
                error, partition, offset = msg.error(), msg.partition(), msg.offset()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        if partition is not None:
                            ends.pop(partition, None)
                        continue
                    raise KafkaException(error)
                if partition is None or offset is None:  # never so for a fetched record
                    continue
                if offset >= ends.get(partition, -1) - 1:
                    ends.pop(partition, None)
                headers = dict(msg.headers() or [])
                value = msg.value()
                if value is not None and headers.get(HEADER_AGENT) == self._agent_header:
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        found.add(json.loads(value)["event"]["id"])
            if ends:
                raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
            return found
        finally:
            consumer.close()

    def close(self) -> None:
        self.spool.save_state()
