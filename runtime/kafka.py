"""The Kafka producer every Vigie producer uses: idempotent, acks=all, compressed.

Idempotence makes broker-side retries safe (no duplicate on a lost ack); acks=all waits for
the in-sync replicas so an acknowledged event survives a broker loss. Delivery results are
counted, never ignored: a producer that cannot deliver says how many records failed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

log = logging.getLogger(__name__)


def producer_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": 20,
        "batch.size": 512 * 1024,
        "queue.buffering.max.messages": 200_000,
        "message.timeout.ms": 300_000,
    }
    config.update(overrides)
    return config


@dataclass
class DeliveryReport:
    """What the broker acknowledged; ``on_delivery`` is the producer callback."""

    delivered: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    positions: list[tuple[int, int]] = field(default_factory=list)
    keep_positions: bool = False

    def on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failed += 1
            self.errors[err.str()] = self.errors.get(err.str(), 0) + 1
            return
        self.delivered += 1
        if self.keep_positions:
            self.positions.append((msg.partition(), msg.offset()))


def make_producer(bootstrap: str, **overrides: Any) -> Producer:
    return Producer(producer_config(bootstrap, **overrides))


def produce_blocking(producer: Producer, topic: str, key: bytes, value: bytes,
                     on_delivery: Any = None, headers: Any = None) -> None:
    """Produce, waiting for room when the local queue is full instead of dropping."""
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=on_delivery,
                             headers=headers)
            return
        except BufferError:
            producer.poll(0.1)
