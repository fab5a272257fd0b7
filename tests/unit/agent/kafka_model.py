"""A model of Kafka's transactions, for the shipper's unit tests.

It keeps what a real cluster keeps: the records of committed transactions (what a
read_committed consumer of ``events.raw`` sees, envelopes opened into their events), each
group's committed offsets and metadata, and one live producer per ``transactional.id``
(``init_transactions`` fences the previous one and drops its open transaction). The real
broker's behaviour is checked by the drills of ``tests/integration/agent``."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, ClassVar

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from schemas.envelope import is_envelope, unpack
from schemas.topics import EVENTS_RAW


class FakeKafka:
    """The broker side: committed records, committed group offsets, live producers."""

    def __init__(self) -> None:
        self.visible: list[str] = []  # event ids of committed events in events.raw
        # committed events.raw records as sent: (key, value, headers)
        self.records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = []
        self.offsets: dict[tuple[str, str, int], tuple[int, str]] = {}
        self.live: dict[str, FakeProducer] = {}
        self.consumers: list[FakeConsumer] = []
        self.fail_commits: list[KafkaError] = []  # raised by the next commits, in order
        self.transactions: list[tuple[list[str], list[int]]] = []  # committed: ids, offsets
        self.fail_offsets: list[KafkaError] = []  # by the next send_offsets_to_transaction
        self.fail_committed: list[KafkaError] = []  # by the next Consumer.committed

    def counts(self) -> Counter[str]:
        return Counter(self.visible)


class FakeProducer:
    kafka: ClassVar[FakeKafka]

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.txid = config["transactional.id"]
        self.ready = False
        self.records: list[str] | None = None  # the open transaction's event ids
        self.raw: list[tuple[bytes, bytes, Any]] = []  # ... and its records
        self.offsets: tuple[str, list[TopicPartition]] | None = None

    def _check(self) -> None:
        if self.kafka.live.get(self.txid) is not self or not self.ready:
            raise KafkaException(KafkaError(KafkaError._FENCED, "fenced", fatal=True))

    def init_transactions(self, _timeout: float = 0) -> None:
        if self.ready:  # librdkafka: _STATE, not retriable
            raise KafkaException(KafkaError(KafkaError._STATE, "already initialised"))
        self.kafka.live[self.txid] = self  # the previous incarnation's transaction is gone
        self.ready = True

    def begin_transaction(self) -> None:
        self._check()
        self.records, self.offsets, self.raw = [], None, []

    def produce(self, topic: str, value: bytes, key: bytes, headers: Any,
                on_delivery: Any) -> None:
        self._check()
        assert topic == EVENTS_RAW.name and self.records is not None
        events = unpack(value)[1] if is_envelope(value) else [value]
        self.records.extend(json.loads(event)["event"]["id"] for event in events)
        self.raw.append((key, value, headers))

    def send_offsets_to_transaction(self, positions: list[TopicPartition], group: str,
                                    _timeout: float = 0) -> None:
        self._check()
        if self.kafka.fail_offsets:
            raise KafkaException(self.kafka.fail_offsets.pop(0))
        self.offsets = (group, positions)

    def commit_transaction(self, _timeout: float = 0) -> None:
        self._check()
        if self.kafka.fail_commits:
            raise KafkaException(self.kafka.fail_commits.pop(0))
        assert self.records is not None
        self.kafka.visible.extend(self.records)
        self.kafka.records.extend(self.raw)
        self.kafka.transactions.append(
            (self.records, [tp.offset for tp in self.offsets[1]] if self.offsets else []))
        if self.offsets is not None:
            group, positions = self.offsets
            for tp in positions:
                self.kafka.offsets[(group, tp.topic, tp.partition)] = (tp.offset, tp.metadata or "")
        self.records = None

    def abort_transaction(self, _timeout: float = 0) -> None:
        self.records = None

    def poll(self, _timeout: float = 0) -> int:
        return 0

    def flush(self, _timeout: float = 0) -> int:
        return 0

    def purge(self, *_: Any) -> None:
        self.records = None


class FakeConsumer:
    """Records every call: the agent may ask for its own group's offsets, nothing else."""

    kafka: ClassVar[FakeKafka]
    ALLOWED = frozenset({"committed", "consumer_group_metadata", "close"})

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.calls: list[tuple[str, Any]] = []
        self.kafka.consumers.append(self)

    def committed(self, partitions: list[TopicPartition],
                  _timeout: float = 0) -> list[TopicPartition]:
        self.calls.append(("committed", [(tp.topic, tp.partition) for tp in partitions]))
        if self.kafka.fail_committed:
            raise KafkaException(self.kafka.fail_committed.pop(0))
        out = []
        for tp in partitions:
            found = self.kafka.offsets.get((self.config["group.id"], tp.topic, tp.partition))
            out.append(TopicPartition(tp.topic, tp.partition, *found) if found
                       else TopicPartition(tp.topic, tp.partition))
        return out

    def consumer_group_metadata(self) -> str:
        self.calls.append(("consumer_group_metadata", None))
        return str(self.config["group.id"])

    def close(self) -> None:
        self.calls.append(("close", None))

    def __getattr__(self, name: str) -> Any:
        def forbidden(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args))
            raise AssertionError(f"the agent called Consumer.{name}")
        return forbidden
