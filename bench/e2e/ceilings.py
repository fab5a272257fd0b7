"""Raw ceilings: what Kafka and Elasticsearch do alone with the pipeline's own records.

* Kafka produce: the project's producer settings (idempotent, acks=all, lz4), the signed
  records with their headers, into a scratch topic with as many partitions as ``events.raw``;
  timed until the last acknowledgement.
* Kafka consume: a fresh group reads the same records back from that topic.
* Elasticsearch bulk: the documents the sink would index, with ``elasticsearch.helpers.bulk``
  and deterministic ``_id``s, into scratch indices created with the ``vigie-events`` template
  body (same mapping, refresh interval and replicas), timed until a refresh makes them
  searchable. A few batch sizes are tried; the best one is then repeated.

Everything scratch is deleted afterwards, even on failure.

Kafka moves records (envelopes): ``kafka_produce`` and ``kafka_consume`` return records/s;
``measure`` reports them in events/s too (records/s times the events per record), the unit
of every other figure.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic
from elasticsearch import Elasticsearch, helpers

from bench.e2e.workload import Record, event_count
from runtime.kafka import KafkaConnection, produce_blocking
from schemas import indices
from schemas.topics import EVENTS_RAW
from sinks.elasticsearch.templates import template_body

BATCH_SIZES = (500, 2000, 5000)


def kafka_produce(kafka: KafkaConnection, topic: str, batch: list[Record]) -> float:
    """Records per second acknowledged by the broker."""
    producer = kafka.producer(**{"message.max.bytes": 4 * 1024 * 1024})
    failed: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    producer.list_topics(topic, timeout=15)  # connect before the clock starts
    began = time.perf_counter()
    for rec in batch:
        produce_blocking(producer, topic, rec.key, rec.value, on_delivery, rec.headers)
        producer.poll(0)
    left = producer.flush(120)
    seconds = time.perf_counter() - began
    if left or failed:
        raise RuntimeError(f"ceiling produce: {left} undelivered, {len(failed)} failed "
                           f"({failed[:3]})")
    return len(batch) / seconds


def kafka_consume(kafka: KafkaConnection, topic: str, total: int, group: str) -> float:
    """Records per second read by a fresh consumer group from the start of ``topic``."""
    consumer = kafka.consumer(group, **{"auto.offset.reset": "earliest",
                                        "fetch.max.bytes": 64 * 1024 * 1024})
    consumer.subscribe([topic])
    read = 0
    began: float | None = None
    deadline = time.monotonic() + 180
    try:
        while read < total:
            if time.monotonic() > deadline:
                raise RuntimeError(f"ceiling consume: {read}/{total} read in 180 s")
            for message in consumer.consume(num_messages=10_000, timeout=1.0):
                if message.error():
                    continue
                # The clock starts at the first record: group join is not throughput.
                began = began or time.perf_counter()
                read += 1
        assert began is not None
        return read / (time.perf_counter() - began)
    finally:
        consumer.close()


def es_bulk(es: Elasticsearch, index: str, docs: list[tuple[str, str, str]],
            chunk_size: int) -> float:
    """Documents per second indexed and made searchable in a fresh ``index``."""
    body = template_body(indices.EVENTS)["template"]
    es.indices.create(index=index, settings=body["settings"], mappings=body["mappings"])
    try:
        actions = ({"_op_type": "index", "_index": index, "_id": doc_id, "_source": source}
                   for _, doc_id, source in docs)
        began = time.perf_counter()
        ok, errors = helpers.bulk(es, actions, chunk_size=chunk_size,
                                  max_chunk_bytes=64 * 1024 * 1024, raise_on_error=False,
                                  request_timeout=120)
        es.indices.refresh(index=index)
        seconds = time.perf_counter() - began
        # A list of failed items (an int only with stats_only=True, not used here).
        if isinstance(errors, list) and errors:
            raise RuntimeError(f"ceiling bulk: {len(errors)} errors, first {errors[0]}")
        return ok / seconds
    finally:
        es.indices.delete(index=index, ignore_unavailable=True)


def measure(kafka: KafkaConnection, es: Elasticsearch, batch: list[Record],
            docs: list[tuple[str, str, str]], repeats: int, tag: str,
            say: Callable[[str], None]) -> dict[str, Any]:
    """All three ceilings, ``repeats`` times each; returns the raw samples."""
    topic = f"bench.scratch-{tag}"
    admin = kafka.admin()
    admin.create_topics([NewTopic(topic, EVENTS_RAW.partitions, 1,
                                  config={"max.message.bytes": str(2 * 1024 * 1024)})]
                        )[topic].result()
    per_record = event_count(batch) / len(batch)
    out: dict[str, Any] = {"records": len(batch), "events_per_record": per_record}
    try:
        out["kafka_produce_rps"] = [kafka_produce(kafka, topic, batch)
                                    for _ in range(repeats)]
        out["kafka_produce_eps"] = [x * per_record for x in out["kafka_produce_rps"]]
        say(f"  kafka produce: {[round(x) for x in out['kafka_produce_rps']]} rec/s, "
            f"{[round(x) for x in out['kafka_produce_eps']]} ev/s")
        out["kafka_consume_rps"] = [
            kafka_consume(kafka, topic, len(batch), f"bench-ceiling-{tag}-{i}")
            for i in range(repeats)]
        out["kafka_consume_eps"] = [x * per_record for x in out["kafka_consume_rps"]]
        say(f"  kafka consume: {[round(x) for x in out['kafka_consume_rps']]} rec/s, "
            f"{[round(x) for x in out['kafka_consume_eps']]} ev/s")
    finally:
        admin.delete_topics([topic])[topic].result()
        delete_groups(admin, [f"bench-ceiling-{tag}-{i}" for i in range(repeats)])
    trial = {size: es_bulk(es, f"bench-scratch-{tag}-trial-{size}", docs, size)
             for size in BATCH_SIZES}
    best = max(trial, key=lambda size: trial[size])
    say(f"  es bulk by batch size: { {k: round(v) for k, v in trial.items()} }, best {best}")
    out["es_bulk_trial_eps"] = trial
    out["es_bulk_batch"] = best
    out["es_bulk_eps"] = [es_bulk(es, f"bench-scratch-{tag}-{i}", docs, best)
                          for i in range(repeats)]
    say(f"  es bulk: {[round(x) for x in out['es_bulk_eps']]} doc/s")
    return out


def delete_groups(admin: AdminClient, groups: list[str]) -> None:
    """Remove the scratch consumer groups (best effort: they are empty by now)."""
    for future in admin.delete_consumer_groups(groups, request_timeout=15).values():
        with contextlib.suppress(Exception):  # already gone or still settling: harmless
            future.result()
