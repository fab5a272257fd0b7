"""The sink's CPU per event, with and without routing headers, beside the raw bulk ceiling.

Issue 14 asks the sink to spend at most 10 µs of CPU per event. This bench measures what the
sink process itself spends (``time.process_time()``: every thread of this process, so
librdkafka's and the Elasticsearch client's work count too; Elasticsearch's own CPU does not),
on the same documents, in one run:

1. **consume**: reading the records back from a real Kafka topic (a fresh consumer with the
   sink's settings, what the sink's ``consume`` loop costs before any routing), headers
   converted to Python objects included (the sink reads them once per record, 1 µs); the
   median of one read per repetition;
2. **route + body**: ``sinks.routing.route_all`` then the NDJSON bulk bodies, pure Python:
   the part the headers change (decoded body versus headers and raw bytes);
3. **flush**: ``Sink._take`` then ``Sink.flush`` on batches of the sink's configured size,
   sent to the real, secured Elasticsearch, the offsets to commit computed but not sent (the
   records come from a scratch topic, routed as ``events.classified`` for the run), with
   the records as librdkafka delivered them, routing headers and all, and the same records
   without their headers (what an older processor wrote: the decoding fallback);
4. **raw bulk ceiling**: the same documents' NDJSON bodies built before the clock starts,
   sent with ``es.bulk`` in batches of the same size into the same index, docs/s until
   searchable: Elasticsearch with no client work at all, and the client's own CPU for it
   (TLS, HTTP, reading the response), which no sink can go below;
5. **helpers.bulk ceiling**: ``elasticsearch.helpers.bulk`` of the same documents into a
   scratch index with the ``vigie-events`` template (``bench.e2e.ceilings.es_bulk``, the
   ceiling ``bench/e2e`` reports), docs/s until searchable.

The documents are the simulator's events, validated and stamped as the processor does, then
dated January 1999 so that the sink writes them to ``vigie-events-1999.01``, an index no real
event uses, deleted after each repetition. Prints a table and writes ``bench/results/sink.json``.
``--json-library`` figures: how long ``json.loads``/``json.dumps`` and, when importable,
``orjson`` take on the same documents (for the decision to add it or not).

Usage: ``python -m bench.sink [--events 20000] [--repeats 3]`` (needs the local stack).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Message
from confluent_kafka.admin import NewTopic
from elasticsearch import Elasticsearch

from bench.e2e import ceilings
from processors.classify import Document, PassThrough
from processors.outputs import Output, document
from processors.validate import Validator
from producers.simulator.run import registry_for
from producers.simulator.simulation import Simulation
from runtime.elasticsearch import make_client
from runtime.kafka import KafkaConnection, produce_blocking
from runtime.settings import REPO_ROOT, Settings, load_settings
from schemas.event import SecurityEvent
from schemas.indices import EVENTS, TOPIC_TO_INDEX
from schemas.routing import ReceivedHeaders
from schemas.topics import EVENTS_CLASSIFIED
from sinks.consumer import CONSUMER_SETTINGS, Sink, SinkConfig
from sinks.elasticsearch.bulk import MAX_REQUEST_BYTES, RESPONSE_FIELDS, _body
from sinks.routing import route, route_all

RESULTS = REPO_ROOT / "bench" / "results"
BENCH_MONTH = datetime(1999, 1, 15, tzinfo=UTC)
BENCH_INDEX = "vigie-events-1999.01"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def events(home: Path, total: int, seed: int) -> list[SecurityEvent]:
    """``total`` classified events as the processor outputs them (validated, national id,
    stamped), dated in the bench month."""
    orgs = registry_for(home / "registry-300" / "establishments.jsonl", 300)
    now = datetime.now(UTC)
    validator = Validator({o.id: o for o in orgs}, timedelta(seconds=300))
    stamp = PassThrough()
    out = []
    sim = Simulation(orgs, seed=seed, total=total, start=now - timedelta(minutes=10),
                     span=timedelta(minutes=9), scenarios=["brute_force", "malware"],
                     malformed=0)
    for n, rec in enumerate(sim):
        event = stamp.classify(Document(validator.validate(rec.value, rec.key),
                                           json.loads(rec.value))).event
        out.append(event.model_copy(update={"timestamp": BENCH_MONTH + timedelta(seconds=n)}))
    return out


@contextlib.contextmanager
def routed_as_events(topic: str) -> Iterator[None]:
    """Route the scratch ``topic`` as ``events.classified`` for the run (an entry in the
    routing table, removed after), so that the sink is measured on librdkafka's own
    ``Message`` objects, as in production, not on a wrapper renaming their topic."""
    TOPIC_TO_INDEX[topic] = EVENTS
    try:
        yield
    finally:
        del TOPIC_TO_INDEX[topic]


class Delivered:
    """A record read from the scratch topic without the routing headers it was produced with
    (what an older processor wrote), presented as read from ``events.classified``: routing
    from the body takes the id where that topic's documents hold it. Its own calls add about
    0.05 µs each to the "decoding" figures."""

    __slots__ = ("_message", "_with_headers")

    def __init__(self, message: Message, with_headers: bool) -> None:
        self._message = message
        self._with_headers = with_headers

    def topic(self) -> str:
        return EVENTS_CLASSIFIED.name

    def partition(self) -> int:
        return self._message.partition() or 0

    def offset(self) -> int:
        return self._message.offset() or 0

    def key(self) -> bytes | None:
        return self._message.key()

    def value(self) -> bytes | None:
        return self._message.value()

    def headers(self) -> ReceivedHeaders | None:
        return self._message.headers() if self._with_headers else None

    def error(self) -> None:
        return self._message.error()


class NoCommit:
    """Stands for the sink's consumer in :func:`flush_run`: the offsets are computed as the
    sink computes them, but not sent (the records come from a scratch topic)."""

    def __init__(self) -> None:
        self.commits = 0

    def commit(self, offsets: list[Any], asynchronous: bool) -> None:
        self.commits += 1


def through_kafka(kafka: KafkaConnection, outputs: list[Output],
                  reads: int) -> tuple[list[Message], list[float]]:
    """Produce ``outputs`` to a scratch topic and read them back ``reads`` times, each time
    with a fresh consumer; returns the messages of the last read and each read's CPU µs per
    record (one read alone drifted from 4.7 to 8.4 between runs on this shared machine)."""
    tag = uuid.uuid4().hex[:10]
    topic = f"bench.scratch-sink-{tag}"
    groups = [f"bench-sink-{tag}-{n}" for n in range(reads)]
    admin = kafka.admin()
    admin.create_topics([NewTopic(topic, EVENTS_CLASSIFIED.partitions, 1)])[topic].result()
    try:
        producer = kafka.producer()
        for out in outputs:
            produce_blocking(producer, topic, out.key or b"", out.value, None, out.headers)
            producer.poll(0)
        if producer.flush(120):
            raise RuntimeError("scratch records not acknowledged")
        del producer
        samples: list[float] = []
        messages: list[Message] = []
        for group in groups:
            messages = []  # the previous read's, freed before this one is timed
            messages, cpu_us = read_back(kafka, topic, group, len(outputs))
            samples.append(cpu_us)
        return messages, samples
    finally:
        admin.delete_topics([topic])[topic].result()
        for future in admin.delete_consumer_groups(groups, request_timeout=15).values():
            with contextlib.suppress(Exception):  # best effort: an empty group is harmless
                future.result()


def read_back(kafka: KafkaConnection, topic: str, group: str,
              expected: int) -> tuple[list[Message], float]:
    """``topic`` read whole by a fresh consumer of ``group``, and its CPU µs per record."""
    consumer = kafka.consumer(group, **CONSUMER_SETTINGS)
    consumer.subscribe([topic])
    messages: list[Message] = []
    cpu = 0.0
    deadline = time.monotonic() + 180
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            began = time.process_time()
            got = consumer.consume(num_messages=2000, timeout=1.0)
            good = [m for m in got if m.error() is None]
            for message in good:
                # librdkafka's headers become Python objects on the first call, which the
                # sink makes once per record (1 µs); later calls return those. Paid here,
                # once per record, rather than in the first repetition only.
                message.headers()
            if messages or good:  # group join and first fetch are not per-record cost
                cpu += time.process_time() - began
            messages += good
    finally:
        consumer.close()
    if len(messages) < expected:
        raise RuntimeError(f"read {len(messages)}/{expected} scratch records")
    return messages, 1e6 * cpu / len(messages)


def route_and_body_us(records: list[Any], batch: int) -> float:
    """CPU µs per record of routing and building the bulk body, no I/O."""
    began = time.process_time()
    for start in range(0, len(records), batch):
        lines = route_all(records[start:start + batch]).lines
        for first, stop in lines.runs(MAX_REQUEST_BYTES):
            lines.body(first, stop)
    return 1e6 * (time.process_time() - began) / len(records)


def flush_run(settings: Settings, es: Elasticsearch, records: list[Any]) -> dict[str, float]:
    """The real ``Sink.flush`` on ``records`` in batches of the configured size, to the real
    Elasticsearch; CPU µs per record and documents per second until searchable."""
    es.indices.delete(index=BENCH_INDEX, ignore_unavailable=True)
    sink = Sink(SinkConfig.from_settings(settings, [EVENTS_CLASSIFIED.name],
                                         group=f"vigie-sink-bench-{uuid.uuid4().hex[:8]}"), es)
    # Closed before the clock starts: connecting it (TLS, SCRAM) is its threads' work once
    # per process, not per record, and read 2 µs a record of these 20,000 when timed.
    sink._consumer.close()
    sink._consumer = NoCommit()  # type: ignore[assignment]
    size = sink.config.max_docs
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        for start in range(0, len(records), size):
            sink._take(records[start:start + size])  # type: ignore[arg-type]
            sink.flush()
        cpu = time.process_time() - cpu
        es.indices.refresh(index=BENCH_INDEX)
        wall = time.perf_counter() - wall
        indexed = int(es.count(index=BENCH_INDEX)["count"])
        if indexed != len(records) or sink.stats.dead_lettered:
            raise RuntimeError(f"{indexed}/{len(records)} indexed, "
                               f"{sink.stats.dead_lettered} dead letters")
        return {"cpu_us_per_event": 1e6 * cpu / len(records),
                "docs_per_s": len(records) / wall}
    finally:
        es.indices.delete(index=BENCH_INDEX, ignore_unavailable=True)


def raw_bulk(es: Elasticsearch, records: list[Any], size: int) -> dict[str, float]:
    """Docs/s of ``es.bulk`` with bodies built beforehand (the sink's own bulk lines), and
    the client's CPU µs per document for sending them."""
    es.indices.delete(index=BENCH_INDEX, ignore_unavailable=True)
    bodies = [_body([route(r.topic(), r.value(), r.headers()) for r in records[i:i + size]])
              for i in range(0, len(records), size)]
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        for body in bodies:
            response = es.bulk(operations=body, refresh=False,  # type: ignore[arg-type]
                               filter_path=RESPONSE_FIELDS)
            if response.get("errors"):
                raise RuntimeError("raw bulk: rejected documents")
        cpu = time.process_time() - cpu
        es.indices.refresh(index=BENCH_INDEX)
        wall = time.perf_counter() - wall
        return {"docs_per_s": len(records) / wall, "cpu_us_per_event": 1e6 * cpu / len(records)}
    finally:
        es.indices.delete(index=BENCH_INDEX, ignore_unavailable=True)


def json_library_us(values: list[bytes]) -> dict[str, float]:
    """µs per document to decode (and re-encode) the documents with ``json``, and with
    ``orjson`` when it can be imported."""
    out: dict[str, float] = {}

    def per_doc(fn: Callable[[bytes], Any]) -> float:
        began = time.process_time()
        for value in values:
            fn(value)
        return 1e6 * (time.process_time() - began) / len(values)

    out["json_loads"] = per_doc(json.loads)
    decoded = [json.loads(v) for v in values]
    began = time.process_time()
    for doc in decoded:
        json.dumps(doc)
    out["json_dumps"] = 1e6 * (time.process_time() - began) / len(values)
    try:
        orjson = importlib.import_module("orjson")
    except ImportError:
        return out
    out["orjson_loads"] = per_doc(orjson.loads)
    began = time.process_time()
    for doc in decoded:
        orjson.dumps(doc)
    out["orjson_dumps"] = 1e6 * (time.process_time() - began) / len(values)
    return out


def measure(settings: Settings, es: Elasticsearch, repeats: int, routed: list[Any],
            legacy: list[Any], docs: list[SecurityEvent], outputs: list[Output],
            samples: dict[str, list[float]]) -> None:
    """``repeats`` repetitions of every measure, appended to ``samples``."""
    size = settings.sink_batch_max_docs
    for _ in range(repeats):
        for name, records in (("headers", routed), ("decoding", legacy)):
            samples.setdefault(f"route_body_{name}", []).append(
                route_and_body_us(records, size))
            run = flush_run(settings, es, records)
            samples.setdefault(f"flush_cpu_{name}", []).append(run["cpu_us_per_event"])
            samples.setdefault(f"flush_eps_{name}", []).append(run["docs_per_s"])
        raw = raw_bulk(es, routed, size)
        samples.setdefault("raw_bulk_eps", []).append(raw["docs_per_s"])
        samples.setdefault("raw_bulk_client_cpu", []).append(raw["cpu_us_per_event"])
        ceiling_docs = [("", d.id, o.value.decode()) for d, o in zip(docs, outputs, strict=True)]
        samples.setdefault("helpers_bulk_eps", []).append(ceilings.es_bulk(
            es, f"bench-scratch-sink-{uuid.uuid4().hex[:8]}", ceiling_docs, size))
        for mode in ("headers", "decoding"):  # Elasticsearch is shared: ratios of one moment
            samples.setdefault(f"ratio_{mode}", []).append(
                samples[f"flush_eps_{mode}"][-1] / raw["docs_per_s"])
        say(f"  repetition: { {k: round(v[-1], 1) for k, v in samples.items()} }")


def median(samples: list[float]) -> float:
    return round(statistics.median(samples), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    settings = load_settings()
    es = make_client(settings, request_timeout=120)
    say(f"building {args.events} classified events…")
    docs = events(settings.home / "bench", args.events, seed=int(time.time()) % 10**6)
    outputs = [document(EVENTS_CLASSIFIED.name, d.organization.id.encode(), d) for d in docs]
    # The workload (20,000 pydantic documents, their records) stays alive for the whole run:
    # frozen, the garbage collections that the consumer's and the sink's own allocations
    # trigger do not walk it. A running sink holds one batch, not this; without it, the
    # first conversion of the headers read 12 µs a record instead of 1 (full collections
    # walking millions of the bench's objects).
    gc.collect()
    gc.freeze()
    say("through a scratch topic…")
    messages, consume_samples = through_kafka(settings.kafka, outputs, args.repeats)
    consume_us = statistics.median(consume_samples)
    routed: list[Any] = messages
    legacy: list[Any] = [Delivered(m, with_headers=False) for m in messages]
    gc.freeze()  # the records read too (see above)
    size = settings.sink_batch_max_docs
    result: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "events": len(messages),
        "repeats": args.repeats, "sink_batch_docs": size,
        "document_bytes_mean": round(statistics.mean(len(o.value) for o in outputs)),
        "consume_cpu_us_per_event": round(consume_us, 2),
        "consume_cpu_us_per_event_samples": [round(v, 2) for v in consume_samples],
    }
    samples: dict[str, list[float]] = {}
    with routed_as_events(str(messages[0].topic())):
        measure(settings, es, args.repeats, routed, legacy, docs, outputs, samples)
    for name, values in samples.items():
        result[name] = {"median": median(values), "samples": [round(v, 2) for v in values]}
    for mode in ("headers", "decoding"):
        result[f"sink_cpu_us_per_event_{mode}"] = round(
            consume_us + result[f"flush_cpu_{mode}"]["median"], 2)
        result[f"ratio_sink_to_ceiling_{mode}"] = round(result[f"ratio_{mode}"]["median"], 3)
    result["ceiling_es_raw_bulk_docs_per_s"] = result["raw_bulk_eps"]["median"]
    result["ceiling_es_bulk_docs_per_s"] = result["helpers_bulk_eps"]["median"]
    result["json_library_us_per_document"] = {
        k: round(v, 2) for k, v in json_library_us([o.value for o in outputs]).items()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sink.json").write_text(json.dumps(result, indent=2) + "\n")
    print(report(result))


def report(r: dict[str, Any]) -> str:
    """The figures as a table, headers first."""
    lines = [f"sink, {r['events']} events of {r['document_bytes_mean']} B, batches of "
             f"{r['sink_batch_docs']}, {r['repeats']} repetitions (medians)",
             f"{'':34}{'headers':>12}{'decoding':>12}"]
    rows = [("route + bulk body, CPU µs/event", "route_body"),
            ("Sink.flush, CPU µs/event", "flush_cpu"),
            ("Sink.flush, docs/s (searchable)", "flush_eps")]
    for label, key in rows:
        lines.append(f"{label:34}{r[f'{key}_headers']['median']:>12,.1f}"
                     f"{r[f'{key}_decoding']['median']:>12,.1f}")
    lines.append(f"{'consume, CPU µs/event':34}{r['consume_cpu_us_per_event']:>12,.1f}"
                 f"{r['consume_cpu_us_per_event']:>12,.1f}")
    lines.append(f"{'sink total, CPU µs/event':34}{r['sink_cpu_us_per_event_headers']:>12,.1f}"
                 f"{r['sink_cpu_us_per_event_decoding']:>12,.1f}")
    lines.append(f"{'ratio to raw bulk (per repetition)':34}"
                 f"{r['ratio_sink_to_ceiling_headers']:>12.3f}"
                 f"{r['ratio_sink_to_ceiling_decoding']:>12.3f}")
    lines.append(f"ES raw bulk ceiling (prebuilt bodies, same docs): "
                 f"{r['ceiling_es_raw_bulk_docs_per_s']:,.0f} docs/s, client CPU "
                 f"{r['raw_bulk_client_cpu']['median']:.1f} µs/doc")
    lines.append(f"ES helpers.bulk (bench/e2e's ceiling), same docs: "
                 f"{r['ceiling_es_bulk_docs_per_s']:,.0f} docs/s")
    lines.append(f"JSON per document, µs: {r['json_library_us_per_document']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
