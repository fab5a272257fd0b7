"""The agents registry on Kafka: read it, change it, and follow it live.

The registry is the compacted topic ``vigie.agents`` (``schemas.topics.AGENTS``), keyed by
agent id, each value an :class:`~schemas.enrolment.AgentEntry` as JSON; every change is also
journaled on ``vigie.agents.audit``. Simulated agents live on ``vigie.agents.simulated``,
which only a processor in demo mode follows.

Why a topic: every processor worker must see a revocation within seconds, without a restart,
wherever it runs; the workers already reach Kafka, and a compacted topic keeps the latest entry
of every agent forever. Why a plain librdkafka consumer thread rather than a Faust
``GlobalTable``: Faust documents that a GlobalTable shared by several app instances "may
cause an app to be stuck in an infinite recovery loop" (``faust/tables/globaltable.py``); its
changelog is named after the app id (the tests and benchmarks run fresh app ids); it is updated
only while Faust's own consumer runs, and ``vigie agents`` is not a Faust app. The follower
here joins no consumer group (it assigns every partition, from the beginning), so each worker
reads the whole registry, and it works the same in any process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from runtime.agents_registry import AgentsRegistryError, AgentsState
from runtime.errors import ServiceUnavailable
from runtime.kafka import DeliveryReport, KafkaConnection
from schemas.enrolment import AgentChange, AgentEntry
from schemas.topics import AGENTS, AGENTS_AUDIT, AGENTS_SIMULATED, Topic

log = logging.getLogger(__name__)

#: librdkafka wants a group id even for a consumer that never joins, commits nor subscribes.
FOLLOWER_GROUP = "vigie-agents-follower"
#: How long one poll of the follower waits: a change is applied at most this long (plus the
#: broker's fetch wait) after it lands, far below the 10-second revocation promise.
POLL_S = 0.5

Handler = Callable[[Topic, str, bytes | None, str], None]


def _consumer(kafka: KafkaConnection) -> Consumer:
    return kafka.consumer(FOLLOWER_GROUP, **{"auto.offset.reset": "earliest",
                                             "fetch.wait.max.ms": 200})


def _assign_from_start(consumer: Consumer, topics: Iterable[Topic],
                       timeout: float) -> dict[tuple[str, int], int]:
    """Assign every partition of ``topics`` from the beginning; returns the end offset of each
    (what "caught up" means now)."""
    ends: dict[tuple[str, int], int] = {}
    assignment = []
    try:
        for topic in topics:
            metadata = consumer.list_topics(topic.name, timeout=timeout).topics[topic.name]
            if (metadata.error is not None
                    and metadata.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
                # No registry yet: no agent is trusted (the topic is created at a process's
                # start, `runtime.topics.ensure_topics`, or by the first change).
                log.warning("no topic %s yet: an empty registry", topic.name)
                continue
            if metadata.error is not None:
                raise ServiceUnavailable(f"topic {topic.name}: {metadata.error.str()}")
            for partition in metadata.partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic.name, partition), timeout=timeout)
                if high > low:
                    ends[(topic.name, partition)] = high
                assignment.append(TopicPartition(topic.name, partition, OFFSET_BEGINNING))
    except KafkaException as exc:
        raise ServiceUnavailable(f"Kafka does not answer ({exc.args[0].str()}) while reading "
                                 "the agents registry") from None
    consumer.assign(assignment)
    return ends


def _dispatch(message_topic: str, by_name: Mapping[str, Topic], key: bytes | None,
              value: bytes | None, where: str, handler: Handler) -> None:
    if key is None:
        log.error("agents registry %s: record without a key, ignored", where)
        return
    handler(by_name[message_topic], key.decode("utf-8", "replace"), value, where)


def _read_until(consumer: Consumer, ends: dict[tuple[str, int], int],
                by_name: Mapping[str, Topic], handler: Handler, timeout: float) -> None:
    """Feed ``handler`` every record until each partition reached its end of ``ends``."""
    pending = dict(ends)
    deadline = time.monotonic() + timeout
    while pending:
        if time.monotonic() > deadline:
            raise ServiceUnavailable(
                f"the agents registry could not be read to its end within {timeout:.0f} s "
                f"({', '.join(f'{t}[{p}]' for t, p in pending)} behind)")
        message = consumer.poll(POLL_S)
        if message is None:
            # Compaction may have removed the records just below an end: ask where we are.
            positions = consumer.position([TopicPartition(t, p) for t, p in pending])
            for position in positions:
                if position.offset >= pending[(position.topic, position.partition)]:
                    del pending[(position.topic, position.partition)]
            continue
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("agents registry: %s", error.str())
            continue
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        assert topic is not None and partition is not None and offset is not None
        _dispatch(topic, by_name, message.key(), message.value(),
                  f"{topic}[{partition}]@{offset}", handler)
        end = pending.get((topic, partition))
        if end is not None and offset + 1 >= end:
            del pending[(topic, partition)]


def _read_whole(kafka: KafkaConnection, topic: Topic,
                handler: Callable[[Topic, str, bytes | None, str], None],
                timeout: float) -> None:
    """Every record of ``topic``, from its start to its end now, through ``handler``."""
    consumer = _consumer(kafka)
    try:
        ends = _assign_from_start(consumer, [topic], timeout)
        _read_until(consumer, ends, {topic.name: topic}, handler, timeout)
    finally:
        consumer.close()


def read_entries(kafka: KafkaConnection, topic: Topic = AGENTS,
                 timeout: float = 30.0) -> dict[str, AgentEntry]:
    """The registry as it is now: the latest entry of each agent, as the CLI checks a change
    against. An unreadable record is an error here (an operator must see it), with where."""
    entries: dict[str, AgentEntry] = {}

    def keep(_topic: Topic, agent_id: str, value: bytes | None, where: str) -> None:
        if value is None:
            entries.pop(agent_id, None)
            return
        try:
            entries[agent_id] = AgentEntry.model_validate_json(value)
        except ValueError as exc:
            raise AgentsRegistryError(str(exc).splitlines()[0], source=where) from None

    _read_whole(kafka, topic, keep, timeout)
    return entries


def read_changes(kafka: KafkaConnection, timeout: float = 30.0) -> list[AgentChange]:
    """Every change journaled on the audit topic, oldest first."""
    changes: list[AgentChange] = []

    def keep(_topic: Topic, _agent_id: str, value: bytes | None, where: str) -> None:
        if value is None:
            return
        try:
            changes.append(AgentChange.model_validate_json(value))
        except ValueError as exc:
            raise AgentsRegistryError(str(exc).splitlines()[0], source=where) from None

    _read_whole(kafka, AGENTS_AUDIT, keep, timeout)
    return changes


def publish(kafka: KafkaConnection, changes: list[AgentChange], topic: Topic = AGENTS,
            audit: bool = True) -> None:
    """Write ``changes``: each audit record first (acknowledged), then the entries, so that
    no entry is ever trusted without its journal line. Raises if Kafka did not take them."""
    if not changes:
        return
    producer = kafka.producer()
    steps: list[tuple[Topic, list[tuple[bytes, bytes]]]] = []
    if audit:
        steps.append((AGENTS_AUDIT, [(c.agent_id.encode(), c.model_dump_json(
            exclude_none=True).encode()) for c in changes]))
    steps.append((topic, [(c.agent_id.encode(), c.entry.model_dump_json(
        exclude_none=True).encode()) for c in changes]))
    for target, records in steps:
        report = DeliveryReport()
        for key, value in records:
            producer.produce(target.name, key=key, value=value, on_delivery=report.on_delivery)
            producer.poll(0)
        left = producer.flush(30)
        if left or report.failed:
            raise ServiceUnavailable(
                f"Kafka did not acknowledge {left + report.failed} record(s) on {target.name}"
                + (f" ({', '.join(report.errors)})" if report.errors else "")
                + ("; the audit journal holds changes the registry lacks: run the command "
                   "again" if target is not AGENTS_AUDIT and audit else ""))


class AgentsFollower:
    """Follows registry topics in a background thread and feeds their records to states.

    :meth:`start` reads every topic to its current end before returning (a worker must not
    verify a record against half a registry), then a daemon thread keeps polling: a change is
    applied within about a second of landing. The thread never dies of an error: it logs and
    polls again (librdkafka reconnects by itself).
    """

    def __init__(self, kafka: KafkaConnection, states: Sequence[tuple[Topic, AgentsState]],
                 on_change: Callable[[], None] | None = None) -> None:
        self.kafka = kafka
        self.topics = [topic for topic, _ in states]
        self.states = {topic.name: state for topic, state in states}
        self.by_name = {topic.name: topic for topic in self.topics}
        self.on_change = on_change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Consumer | None = None
        self.applied = 0

    def _apply(self, topic: Topic, agent_id: str, value: bytes | None, where: str) -> None:
        self.states[topic.name].apply(agent_id, value, where)
        self.applied += 1

    def start(self, timeout: float = 60.0) -> AgentsFollower:
        consumer = _consumer(self.kafka)
        try:
            ends = _assign_from_start(consumer, self.topics, timeout)
            _read_until(consumer, ends, self.by_name, self._apply, timeout)
        except BaseException:
            consumer.close()
            raise
        self._consumer = consumer
        if self.on_change is not None:
            self.on_change()
        self._thread = threading.Thread(target=self._follow, name="agents-registry",
                                        daemon=True)
        self._thread.start()
        return self

    def _follow(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        changed = False
        while not self._stop.is_set():
            try:
                message = consumer.poll(POLL_S)
                if message is None:
                    if changed and self.on_change is not None:
                        self.on_change()  # once a burst of changes is applied, not per record
                    changed = False
                    continue
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        log.warning("agents registry: %s", error.str())
                    continue
                topic = message.topic()
                assert topic is not None
                _dispatch(topic, self.by_name, message.key(), message.value(),
                          f"{topic}[{message.partition()}]@{message.offset()}", self._apply)
                changed = True
            except Exception:
                log.exception("agents registry follower: error, polling again")
                self._stop.wait(POLL_S)
        consumer.close()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def simulated_entries(kafka: KafkaConnection, timeout: float = 30.0) -> dict[str, AgentEntry]:
    """The simulated registry as it is now (``vigie agents list --simulated``)."""
    return read_entries(kafka, AGENTS_SIMULATED, timeout)
