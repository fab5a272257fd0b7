"""The processor's writes to Kafka: every output acknowledged before its input counts as done.

Outputs go through a confluent-kafka (librdkafka) producer rather than Faust's aiokafka one.
Profiling the processor showed aiokafka's pure-Python record building, compression and socket
writes taking about a fifth of its event-loop time, and Faust's per-message ``Topic.send``
machinery another few percent; librdkafka batches, compresses and sends in its own threads,
outside the GIL. Faust still consumes, keeps the tables and their changelogs, and commits.

The partitioner is Java's murmur2, the one aiokafka (so Faust) uses: the same key lands in
the same partition as before the switch, so keyed state (tables co-partitioned with
``detections``, ``indicators``…) stays where it was on an existing deployment, and the
incident ticks, still sent through Faust, land next to the detections of their establishment
(``tests/integration/test_partitioning.py`` checks it against the broker).

Every document the sink indexes leaves through :func:`document`: serialised once, with its
index, ``_id`` and (incidents) version in the record's headers (``schemas.routing``), so that
the sink writes the bytes as they are instead of decoding them to find where they go.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import faust
from confluent_kafka import KafkaError, Message

from runtime import metrics
from runtime.backoff import Backoff
from runtime.kafka import KafkaConnection
from schemas.indices import TOPIC_TO_INDEX
from schemas.routing import Document, Headers, routing_for

log = logging.getLogger(__name__)

class Output(NamedTuple):
    """One record to send: ``topic`` a Faust topic object or a topic name."""

    topic: faust.TopicT | str
    key: bytes | None
    value: bytes
    headers: Headers | None = None


def _name(topic: faust.TopicT | str) -> str:
    return topic if isinstance(topic, str) else topic.get_topic_name()


def document(topic: faust.TopicT | str, key: bytes | None, doc: Document) -> Output:
    """``doc`` serialised once for ``topic``; if the sink reads that topic, the record also
    carries where the document goes (``schemas.routing``), so the sink need not decode it."""
    name = _name(topic)
    headers = routing_for(name, doc).headers() if name in TOPIC_TO_INDEX else None
    return Output(topic, key, doc.to_json_bytes(), headers)


class _Reports:
    """The delivery reports of one ``deliver`` call. Reports may arrive in any thread that
    polls the shared producer: only ``list.append`` (atomic) records them. A report does not
    carry the message's headers back, so each is bound to its output (``functools.partial``,
    cheaper than a closure per output) for a failure to be sent again exactly as it was."""

    __slots__ = ("done", "failed")

    def __init__(self) -> None:
        self.done: list[KafkaError | None] = []
        self.failed: list[Output] = []

    @property
    def count(self) -> int:
        return len(self.done)

    @property
    def error(self) -> str:
        return next((e.str() for e in self.done if e is not None), "")

    def report(self, out: Output, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:  # recorded before it counts as reported
            self.failed.append(out)
        self.done.append(err)


class Outputs:
    """One idempotent producer for the worker; ``deliver`` is the only way out."""

    def __init__(self, kafka: KafkaConnection, **overrides: Any) -> None:
        self.producer = kafka.producer(**{"partitioner": "murmur2_random", "linger.ms": 5,
                                          "message.max.bytes": 8 * 1024 * 1024, **overrides})

    async def deliver(self, outputs: Sequence[Output]) -> None:
        """Send every output and wait for the broker's acks; re-send what failed.

        Never gives up and never raises: Faust acks a batch's records when the loop moves on,
        even on an exception, so a failure escaping here would commit records whose outputs
        were lost. Kafka being away only stalls the processor.
        """
        loop = asyncio.get_running_loop()
        backoff = Backoff(base=0.5, cap=30)
        pending = list(outputs)
        while pending:
            reports = _Reports()
            for out in pending:
                self._produce(out, functools.partial(reports.report, out))
            # flush() sends now and serves delivery callbacks (possibly those of another
            # agent's delivery: the producer is shared); in a thread, so that the event loop
            # (Faust's fetching, timers, tables) keeps running. Wait for this call's own
            # reports, not for an empty queue.
            while reports.count < len(pending):
                await loop.run_in_executor(None, self.producer.flush, 1.0)
            failed = reports.failed
            if failed:
                metrics.ERRORS.labels("processor", "produce").inc(len(failed))
                delay = backoff.next_delay()
                log.warning("%d outputs not acknowledged (%s); re-sending in %.1f s",
                            len(failed), reports.error, delay)
                await asyncio.sleep(delay)
            pending = failed

    def _produce(self, out: Output, report: Callable[[KafkaError | None, Message], None]
                 ) -> None:
        topic, key, value, headers = out
        while True:
            try:
                self.producer.produce(_name(topic), value, key, headers=headers,
                                      on_delivery=report)
                return
            except BufferError:  # local queue full: let librdkafka send some first
                self.producer.poll(0.05)

    def close(self, timeout: float = 30.0) -> None:
        """Flush what is left (outputs of a batch being delivered at shutdown)."""
        left = self.producer.flush(timeout)
        if left:
            log.warning("%d outputs still unacknowledged at shutdown; their inputs are not "
                        "committed and will be processed again", left)
