"""The processor's outputs (librdkafka, ``processors.outputs``) and what Faust still sends
itself (aiokafka: incident ticks) put a key in the same partition: tables keyed by
establishment rely on ticks and detections being co-partitioned."""

from __future__ import annotations

import time

import pytest
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

from processors.outputs import Outputs
from runtime.settings import Settings

pytestmark = pytest.mark.integration


def test_outputs_and_faust_partition_keys_alike(stack: Settings) -> None:
    topic = f"vigie-partitioning-{int(time.time() * 1000)}"
    admin = stack.kafka.admin()
    admin.create_topics([NewTopic(topic, 6, 1)])[topic].result(30)
    try:
        time.sleep(1)
        producer: Producer = Outputs(stack.kafka).producer
        landed: dict[bytes, int] = {}
        keys = [f"{n:09d}".encode() for n in range(0, 3_000_000_000, 9_999_991)][:300]
        for key in keys:
            producer.produce(topic, b"{}", key=key, on_delivery=lambda err, msg: landed.__setitem__(
                msg.key(), -1 if err else msg.partition()))
        assert producer.flush(30) == 0
        partitions = list(range(6))
        faust_side = {key: DefaultPartitioner()(key, partitions, partitions) for key in keys}
        assert landed == faust_side
        assert len(set(landed.values())) == 6  # the keys spread: the check is not vacuous
    finally:
        admin.delete_topics([topic])
