"""A processor output Kafka did not acknowledge is sent again exactly as it was: the delivery
report (which does not carry headers back) is bound to its output."""

from __future__ import annotations

import functools

from confluent_kafka import Producer

from processors.outputs import Output, _Reports


def test_a_failed_delivery_is_rebuilt_from_its_report() -> None:
    # No broker listens on port 1: librdkafka times the message out and reports the failure.
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": 300,
                         "log_level": 0})
    reports = _Reports()
    sent = Output("events.classified", b"750000001", b'{"a":1}',
                  [("vigie-index", b"vigie-events-2026.12"), ("vigie-id", b"0" * 32)])
    producer.produce(sent.topic, sent.value, sent.key, headers=sent.headers,
                     on_delivery=functools.partial(reports.report, sent))
    while reports.count < 1:
        producer.flush(1.0)
    assert reports.count == 1 and reports.error
    [again] = reports.failed
    assert again == sent
