"""Shipping the spool to Kafka in transactions that carry their own position: no READ needed.

- Producer: the project's ``acks=all``, lz4 configuration (:meth:`runtime.kafka.KafkaConnection.
  producer`), made *transactional* with the stable id ``vigie-agent-<agent id>``; key =
  establishment id, signature headers. Every client is built from the agent's one
  :class:`~runtime.kafka.KafkaConnection`, so TLS/SASL apply to all of them.
- Envelopes (:mod:`schemas.envelope`): the records read from the spool go to Kafka many to
  one ``events.raw`` record, so one signature and one Kafka message serve hundreds of events.
  They accumulate into the open envelope, which is produced when it reaches
  ``TARGET_BYTES`` or ``MAX_EVENTS`` (or when the next record has another key), and the
  partial one just before the transaction commits: the commit interval bounds the time an
  event waits in an envelope too. ``chunks``/``frame`` cut and frame them (an event that
  cannot travel in an envelope goes alone, and the processor says what is wrong with it).
  Every count (``in_flight``, ``sent``, ``delivered``, the metrics, the EPS cap) is in
  events, never in envelopes.
- Sequence: an envelope is signed, when it leaves, with the spool sequence number of its
  *last* event (``vigie-sequence``, see :mod:`producers.signing`): durable and rising from
  one envelope to the next, which is all the processor's replay check (per agent, on
  envelope sequences) asks. An envelope is only ever sent again when Kafka never made it
  visible (an aborted transaction, below), so a regrouping after a restart is harmless.
- One transaction per batch (at most ``commit_interval`` seconds or ``max_in_flight``
  events): the batch's envelopes go to ``events.raw`` and, in the same transaction, the spool
  sequence number of its last record is committed as the offset of the agent's own consumer
  group (``vigie-agent-<agent id>``) on partition 0 of ``vigie.agent-progress``, a topic
  nobody writes (``send_offsets_to_transaction``). Kafka commits both or neither; a failed
  delivery of any envelope fails the commit. The spool is acknowledged once the commit
  returns.
- Consumers of ``events.raw`` read with ``isolation.level=read_committed``: records of an
  aborted transaction (a crash mid-batch) are never seen. (Read uncommitted, they would be
  processed once more; their ids are deterministic, so the sink would overwrite, but the
  replay check would dead-letter them.)
- A crash between the spool append and the save of the sources' positions makes the first
  step after the restart spool that batch again, under the same event ids: among the records
  spooled before the restart check, an id is sent once.
- EPS cap: a token bucket (``eps`` per second, one second of burst) limits what leaves the
  hospital; a flood waits in the spool instead of saturating the link.
- Backpressure: at most ``max_in_flight`` events in the open transaction; beyond that the
  transaction is committed before more is read, and the spool grows on disk meanwhile
  (bounded, see :mod:`.spool`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from producers.agent import metrics as agent_metrics
from producers.agent.kafka_logs import kafka_logger
from producers.agent.spool import Spool, SpoolRecord
from producers.signing import Signer
from runtime import metrics
from runtime.kafka import KafkaConnection
from schemas.envelope import MAX_EVENTS, TARGET_BYTES, chunks, frame
from schemas.topics import AGENT_PROGRESS

log = logging.getLogger(__name__)

#: The partition of ``vigie.agent-progress`` whose committed offset is an agent's position.
PROGRESS_PARTITION = 0

#: How long Kafka keeps an agent's transaction open before aborting it by itself (a dead
#: agent's open transaction holds back read_committed consumers of its partition that long).
TRANSACTION_TIMEOUT_MS = 30_000

#: Seconds a blocking transactional call may hold the agent's one thread (sources wait);
#: a call that times out is resumed at a later pump, ``RETRY_S`` later at the earliest.
CALL_TIMEOUT_S = 1.0
RETRY_S = 1.0
#: A call retried while the link is down is logged at WARNING once per this many seconds.
RETRY_LOG_S = 30.0
COMMIT = "commit a transaction"


def agent_transactional_id(agent_id: str) -> str:
    """The agent's stable ``transactional.id`` (one per agent, LITERAL in its ACLs)."""
    return f"vigie-agent-{agent_id}"


def agent_progress_group(agent_id: str) -> str:
    """The consumer group whose offset on ``vigie.agent-progress`` is the agent's position."""
    return f"vigie-agent-{agent_id}"


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


def _kafka_error(exc: KafkaException) -> KafkaError | None:
    error = exc.args[0] if exc.args else None
    return error if isinstance(error, KafkaError) else None


class Shipper:
    def __init__(self, spool: Spool, *, kafka: KafkaConnection, topic: str, signer: Signer,
                 eps: float = 0, max_in_flight: int = 50_000, commit_interval: float = 1.0,
                 progress_topic: str = AGENT_PROGRESS.name,
                 producer_overrides: dict[str, Any] | None = None) -> None:
        """``producer_overrides``: librdkafka tuning of the producer (timeouts, logging);
        the connection itself (address, TLS, SASL) comes from ``kafka`` only.
        ``commit_interval``: seconds a transaction stays open at most (the latency the
        agent adds for read_committed consumers)."""
        self.spool = spool
        self.topic = topic
        self.kafka = kafka
        self.signer = signer
        self.agent_id = signer.agent_id
        self.progress_topic = progress_topic
        self.bucket = TokenBucket(eps)
        self.max_in_flight = max_in_flight
        self.commit_interval = commit_interval
        self.overrides = dict(producer_overrides or {})
        self._error_logged = 0.0
        # what -> (when last logged at WARNING, retries since): a retry every second while
        # the link is down must not write a line every second.
        self._retries: dict[str, tuple[float, int]] = {}
        self.producer = self._new_producer()
        self._initialised = False  # init_transactions() succeeded for this producer
        # Only for its group's committed offset and metadata: never assigned, never polled.
        self._progress: Consumer | None = None
        self.reconciled = False  # the restart check ran with this producer
        # The open transaction: its records, the spool seq it covers up to, its ids.
        self.in_flight: dict[int, SpoolRecord] = {}
        # The open envelope: records of the open transaction not yet handed to the producer
        # (all of one key), and the size of their values with a separator each.
        self._envelope: list[SpoolRecord] = []
        self._envelope_bytes = 0
        self.envelopes = 0  # envelopes handed to the producer (committed or not)
        self._txn_open = False
        self._txn_since = 0.0
        self._txn_upto = 0
        self._txn_last_id = ""
        self._txn_ids: list[str] = []
        # Once a commit started, the transaction is frozen (a timed-out call is resumed with
        # the same arguments): the position it records, and whether the offsets are sent.
        self._committing: tuple[int, str] | None = None
        self._offsets_sent = False
        # Ids in Kafka or in the open transaction, among the records spooled before the first
        # restart check (up to ``_dedup_upto``): a crash between spooling a batch and saving
        # the file positions makes the first step after the restart spool it again.
        self._sent_ids: set[str] = set()
        self._dedup_upto: int | None = None
        self._checked_once = False
        self.sent = 0
        self.delivered = 0
        self.failed = 0
        self.aborted = 0
        self.last_error: str | None = None
        self._retry_at = 0.0
        self._out = metrics.EVENTS_OUT.labels("agent", topic)

    def _new_producer(self) -> Producer:
        return self.kafka.producer(**{
            "message.max.bytes": 4 * 1024 * 1024, "linger.ms": 50,
            "message.timeout.ms": TRANSACTION_TIMEOUT_MS,
            # Its lines through Python logging, repeats held back (see kafka_logs).
            "logger": kafka_logger(), **self.overrides,
            "transactional.id": agent_transactional_id(self.agent_id),
            "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
            "error_cb": self._on_error})

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

    def _delivered(self, seq: int, events: int, err: KafkaError | None,
                   _msg: Message) -> None:
        """A failed envelope fails its transaction at commit (then aborted and its events
        sent again); ``seq`` is its sequence, ``events`` how many it holds."""
        if err is not None and seq in self.in_flight:
            self.failed += events
            self.last_error = err.str()
            metrics.ERRORS.labels("agent", "delivery").inc()

    # --- restart check -------------------------------------------------------------------------
    def _progress_consumer(self) -> Consumer:
        if self._progress is None:
            # Never polled, so it could not serve a ``logger``: it only logs critical
            # lines (its failures surface as exceptions of committed(), and the producer
            # logs the link's state).
            self._progress = self.kafka.consumer(agent_progress_group(self.agent_id),
                                                 **{"isolation.level": "read_committed",
                                                    "log_level": 2})
        return self._progress

    def _reconcile(self) -> None:
        """Fence the previous incarnation, then resume after the position Kafka committed."""
        try:
            if not self._initialised:
                self.producer.init_transactions(CALL_TIMEOUT_S)
                self._initialised = True
            committed = self._progress_consumer().committed(
                [TopicPartition(self.progress_topic, PROGRESS_PARTITION)], CALL_TIMEOUT_S)[0]
            if committed.error is not None:
                raise KafkaException(committed.error)
        except KafkaException as exc:
            self._failed_call("check what Kafka committed before the restart", exc)
            return
        self.spool.cursor = self.spool.acked + 1
        position = committed.offset  # negative (OFFSET_INVALID) when none was committed
        if position > self.spool.acked:
            self._resume_after(position, committed.metadata or "")
        self.spool.cursor = self.spool.acked + 1
        if not self._checked_once:  # the re-spooled batch can only be among these records
            self._checked_once = True
            self._dedup_upto = self.spool.next_seq - 1
        elif self._dedup_upto is None:
            self._sent_ids = set()
        self.reconciled = True

    def _resume_after(self, position: int, event_id: str) -> None:
        """Acknowledge the spool up to ``position`` (in Kafka), if it is this spool's."""
        ids: list[str] = []
        last: SpoolRecord | None = None
        while position < self.spool.next_seq and self.spool.cursor <= position:
            chunk = self.spool.read(min(10_000, position - self.spool.cursor + 1))
            if not chunk:
                break
            ids.extend(r.event_id for r in chunk)
            last = chunk[-1]
        if last is None or last.seq != position or last.event_id != event_id:
            log.warning("Kafka holds position %d (event %s) for this agent, which this spool "
                        "does not hold (spool replaced or wiped?): everything spooled is sent",
                        position, event_id or "-")
            return
        self._sent_ids.update(ids)
        agent_metrics.ALREADY_DELIVERED.inc(len(ids))
        log.info("%d spooled records were already in Kafka before the restart: not resent",
                 len(ids))
        self.spool.ack(position)

    def _failed_call(self, what: str, exc: KafkaException) -> None:
        """Retriable: try again at the next pump. Otherwise start over as after a crash: a
        new producer under the same transactional id fences this one and aborts its open
        transaction, and the position Kafka committed says where to resume."""
        error = _kafka_error(exc)
        self.last_error = str(exc)
        metrics.ERRORS.labels("agent", "transaction").inc()
        self._retry_at = time.monotonic() + RETRY_S
        # A commit is never retried in place: after a broker restart librdkafka was seen to
        # block for good on the second attempt (tests/integration/agent: broker restart
        # drill). Starting over is always correct: the position committed with the records
        # says what Kafka has, so what the abandoned transaction held is sent again, once.
        retry_in_place = what != COMMIT
        if (retry_in_place and error is not None and error.retriable()
                and not error.txn_requires_abort()):
            self._log_retry(what, exc)
            return
        log.warning("cannot %s (%s): transaction abandoned, its records will be sent again",
                    what, exc)
        self._restart()

    def _log_retry(self, what: str, exc: KafkaException) -> None:
        """A warning per kind of call at most every ``RETRY_LOG_S`` s, with the count of
        retries since; DEBUG in between."""
        now = time.monotonic()
        last, retries = self._retries.get(what, (float("-inf"), 0))
        if now - last < RETRY_LOG_S:
            self._retries[what] = (last, retries + 1)
            log.debug("cannot %s yet (%s): retrying", what, exc)
            return
        self._retries[what] = (now, 0)
        again = f", {retries} retries in the last {now - last:.0f} s" if retries else ""
        log.warning("cannot %s yet (%s): retrying, events wait in the spool%s", what, exc,
                    again)

    def _restart(self) -> None:
        if self._txn_open:
            self.aborted += 1
            self._sent_ids.difference_update(self._txn_ids)
        old, self.producer = self.producer, self._new_producer()
        self._initialised = False
        with contextlib.suppress(KafkaException, RuntimeError):
            old.purge()
            old.flush(0)
        self._clear_transaction()
        self.reconciled = False

    def _clear_transaction(self) -> None:
        self.in_flight = {}
        self._envelope, self._envelope_bytes = [], 0
        self._txn_open = False
        self._txn_ids = []
        self._committing = None
        self._offsets_sent = False

    # --- sending -----------------------------------------------------------------------------
    def _add(self, record: SpoolRecord) -> None:
        """Put ``record`` in the open envelope, producing the envelope first if the record
        would not fit in it (size, count, or another key)."""
        envelope = self._envelope
        if envelope and (record.key != envelope[0].key or len(envelope) >= MAX_EVENTS
                         or self._envelope_bytes + len(record.value) + 1 > TARGET_BYTES):
            self._produce_envelope()
        self._envelope.append(record)
        self._envelope_bytes += len(record.value) + 1

    def _produce_envelope(self) -> None:
        """Hand the open envelope to the producer (``chunks`` sets apart what cannot travel
        in one), each record signed with the spool sequence of its last event."""
        records, self._envelope, self._envelope_bytes = self._envelope, [], 0
        if not records:
            return
        establishment = records[0].key.decode("utf-8", "replace")
        at = 0
        for run in chunks([r.value for r in records]):
            at += len(run)
            sequence = records[at - 1].seq
            self._produce(frame(self.agent_id, establishment, sequence, run),
                          records[0].key, sequence, len(run))

    def _produce(self, value: bytes, key: bytes, sequence: int, events: int) -> None:
        headers: list[tuple[str, str | bytes | None]] = list(
            self.signer.headers(value, sequence))
        on_delivery = functools.partial(self._delivered, sequence, events)
        while True:
            try:
                self.producer.produce(self.topic, value=value, key=key, headers=headers,
                                      on_delivery=on_delivery)
                self.envelopes += 1
                return
            except BufferError:
                self.producer.poll(0.05)

    def _is_resent(self, record: SpoolRecord) -> bool:
        """A record spooled twice around a crash (see module doc), already in a transaction."""
        if self._dedup_upto is None or record.seq > self._dedup_upto:
            return False
        if record.event_id in self._sent_ids:
            agent_metrics.ALREADY_DELIVERED.inc()
            return True
        self._sent_ids.add(record.event_id)
        self._txn_ids.append(record.event_id)
        return False

    def pump(self, max_records: int = 5000) -> int:
        """Send what the EPS cap and the in-flight bound allow, in the open transaction;
        commit it when due. Returns the number of events put in the open transaction's
        envelopes (produced when full, or at the commit)."""
        if time.monotonic() < self._retry_at:
            self.producer.poll(0)
            return 0
        if not self.reconciled:
            self._reconcile()
            if not self.reconciled:
                return 0
        self.producer.poll(0)
        if self._committing is not None:  # a commit that timed out before: finish it first
            self._commit()
            if self._txn_open or not self.reconciled:
                return 0
        room = min(max_records, self.max_in_flight - len(self.in_flight))
        granted = self.bucket.take(max(0, room))
        if room > 0 and granted == 0:
            agent_metrics.EPS_THROTTLED.inc(0.01)
        handed = 0
        records = self.spool.read(granted) if granted else []
        if records and not self._txn_open:
            try:
                self.producer.begin_transaction()
            except KafkaException as exc:
                self.spool.cursor = records[0].seq
                self._failed_call("begin a transaction", exc)
                return 0
            self._txn_open, self._txn_since = True, time.monotonic()
        for record in records:
            self._txn_upto, self._txn_last_id = record.seq, record.event_id
            if self._is_resent(record):
                continue
            self.in_flight[record.seq] = record
            self._add(record)
            handed += 1
        self.sent += handed
        self.producer.poll(0)
        if self._txn_open and (len(self.in_flight) >= self.max_in_flight
                               or time.monotonic() - self._txn_since >= self.commit_interval):
            self._commit()
        return handed

    def _commit(self, timeout: float = CALL_TIMEOUT_S) -> None:
        """Record the position in the transaction, commit, acknowledge the spool."""
        if self._committing is None:
            try:  # the partial envelope: its time is up with the transaction's
                self._produce_envelope()
            except KafkaException as exc:
                self._failed_call(COMMIT, exc)
                return
            self._committing = (self._txn_upto, self._txn_last_id)
        upto, event_id = self._committing
        try:
            if not self._offsets_sent:
                position = TopicPartition(self.progress_topic, PROGRESS_PARTITION, upto,
                                          event_id)
                self.producer.send_offsets_to_transaction(
                    [position], self._progress_consumer().consumer_group_metadata(), timeout)
                self._offsets_sent = True
            self.producer.commit_transaction(timeout)
        except KafkaException as exc:
            self._failed_call(COMMIT, exc)
            return
        count = len(self.in_flight)
        self.delivered += count
        self._out.inc(count)
        self._clear_transaction()
        self.spool.ack(upto)
        if self._dedup_upto is not None and upto >= self._dedup_upto:
            self._dedup_upto, self._sent_ids = None, set()  # past the records of the restart

    def flush(self, timeout: float) -> int:
        """Commit the open transaction, waiting up to ``timeout`` s; returns how many records
        are still uncommitted (they stay in the spool for the next start)."""
        if self.reconciled and self._txn_open:
            self._commit(max(timeout, 0.1))
        elif timeout > 0:  # nothing to commit (Kafka away, or the EPS cap): do not spin
            time.sleep(min(timeout, 0.1))
        self.spool.save_state()
        return len(self.in_flight)

    def close(self) -> None:
        """Abort what is still open (rather than let it hold read_committed consumers back
        until Kafka times it out) and release the clients; the spool keeps those records."""
        if self._txn_open:
            with contextlib.suppress(KafkaException):
                self.producer.abort_transaction(CALL_TIMEOUT_S)
            self._clear_transaction()
        if self._progress is not None:
            with contextlib.suppress(KafkaException, RuntimeError):
                self._progress.close()
            self._progress = None
        self.spool.save_state()
