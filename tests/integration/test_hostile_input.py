"""Hostile input through the real processor: every bad record ends in the DLQ with a reason.

Hypothesis generates one batch of 200 hostile raw records — garbage bytes, invalid UTF-8,
deep or huge JSON, wrong types, absurd timestamps, missing establishment, unsigned or
tampered records — interleaved with 200 valid ones, produced to ``events.raw`` in one go and
run through a real processor and sink. Properties checked from Elasticsearch:

* each hostile record is in ``vigie-dlq`` exactly once, under its Kafka coordinates, with the
  reason its kind must produce (garbage: one of the reasons a parser can give);
* each valid record around them is in ``vigie-events`` exactly once and unchanged (same
  timestamp, establishment, host, message and signature-covered content);
* the processor is still running afterwards and still processes a new record.

Records that must fail for their own reason are signed by the establishment's simulated
agent, as ``vigie simulate`` does, so that the signature check cannot be what refuses them;
unsigned and tampered records must fail as ``unknown_agent`` and ``bad_signature``.

One example of 200 records (not 100 examples of one): each example costs a full pipeline
round trip, and the generated batch already mixes every kind.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from producers.simulator.fleet import simulated_agents
from producers.simulator.run import AGENT_SEED
from producers.simulator.simulation import Simulation
from runtime.settings import Settings
from runtime.topics import end_offsets
from schemas import indices
from schemas.limits import MAX_JSON_DEPTH, MAX_RECORD_BYTES
from schemas.organization import Organization
from schemas.topics import EVENTS_RAW
from soc.reconcile import dead_letters_for_offsets, event_id_counts
from tests.integration.fresh import fresh_pipeline

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

HOSTILE = 200
PARSER_REASONS = {"not_utf8", "invalid_json", "too_deep", "schema", "oversize"}

# (kind, record bytes, sign it?, expected reason or a set of acceptable ones)
Hostile = tuple[str, bytes, bool, str | frozenset[str]]


def _template(registry: list[Organization]) -> dict[str, Any]:
    sim = Simulation(registry, seed=99, total=1, start=datetime.now(UTC) - timedelta(minutes=1),
                     span=timedelta(seconds=1), scenarios=[], malformed=0)
    return json.loads(next(iter(sim)).value)


def _dump(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def hostile_records(base: dict[str, Any]) -> st.SearchStrategy[Hostile]:
    """Every kind of bad record, each with the reason it must end with."""

    def variant(change: Any) -> dict[str, Any]:
        doc = json.loads(json.dumps(base))
        change(doc)
        return doc

    garbage = st.binary(min_size=0, max_size=3000).map(
        lambda b: ("garbage", b, True, frozenset(PARSER_REASONS)))
    # A valid event whose bytes carry an invalid UTF-8 sequence inside a string.
    bad_sequences = st.sampled_from([b"\xff", b"\xc3(", b"\xe2\x28\xa1", b"\xf0\x90\x28",
                                     b"\xed\xa0\x80", b"\xc0\xaf"])
    not_utf8 = st.tuples(bad_sequences, st.integers(0, 50)).map(
        lambda t: ("not_utf8", _dump(variant(lambda d: d.update(message="x" * t[1] + "§")))
                   .replace("§".encode(), t[0]), True, "not_utf8"))
    deep = st.integers(MAX_JSON_DEPTH + 1, 2000).flatmap(lambda depth: st.sampled_from([
        ("too_deep", b'{"a":' * depth + b"1" + b"}" * depth, True, "too_deep"),
        ("too_deep", _dump(variant(lambda d: d.update(extra=_nest(depth)))), True,
         "too_deep"),
    ]))
    huge = st.integers(MAX_RECORD_BYTES + 1, MAX_RECORD_BYTES + 200_000).map(
        lambda size: ("huge", _dump(variant(lambda d: d.update(message="A" * size))), True,
                      "oversize"))
    wrong_value = st.one_of(st.text(min_size=1, max_size=20).filter(lambda s: not _numeric(s)),
                            st.lists(st.integers(), min_size=1, max_size=3), st.dictionaries(
                                st.text(max_size=5), st.integers(), min_size=1, max_size=2))
    # Fields where none of these values can pass (an IP field would take an integer).
    paths = st.sampled_from([("event", "severity"), ("organization",), ("event",),
                             ("@timestamp",), ("host",)])
    wrong_type = st.tuples(paths, wrong_value).map(
        lambda t: ("wrong_type", _dump(variant(lambda d: _set(d, t[0], t[1]))), True,
                   "schema"))
    future = st.datetimes(min_value=datetime(2100, 1, 1), max_value=datetime(9999, 1, 1),
                          timezones=st.just(UTC)).map(
        lambda when: ("future_timestamp",
                      _dump(variant(lambda d: d.update({"@timestamp": when.isoformat()}))),
                      True, "clock_skew"))
    # Beyond the processor's horizon (max_event_age_days, 30 by default): no old index.
    backdated = st.datetimes(min_value=datetime(1, 1, 1),
                             max_value=datetime.now() - timedelta(days=31),
                             timezones=st.just(UTC)).map(
        lambda when: ("backdated",
                      _dump(variant(lambda d: d.update({"@timestamp": when.isoformat()}))),
                      True, "too_old"))
    absurd = st.sampled_from(["2024-13-45T00:00:00Z", "yesterday", "", "2024-01-01T00:00:00",
                              "+275760-09-13T00:00:00Z", "0000-00-00T00:00:00Z"]).map(
        lambda text: ("absurd_timestamp",
                      _dump(variant(lambda d: d.update({"@timestamp": text}))), True, "schema"))
    missing = st.just(("missing_establishment",
                       _dump(variant(lambda d: d.pop("organization"))), True, "schema"))
    unsigned = st.just(("unsigned", _dump(base), False, "unknown_agent"))
    tampered = st.just(("tampered", _dump(base), True, "bad_signature"))  # changed after signing
    return st.one_of(garbage, not_utf8, deep, huge, wrong_type, future, backdated, absurd,
                     missing, unsigned, tampered)


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _nest(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _set(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        doc = doc.setdefault(part, {})
    doc[path[-1]] = value


@pytest.fixture(scope="module")
def template(national_registry: list[Organization]) -> dict[str, Any]:
    return _template(national_registry)


def test_hostile_records_end_in_the_dlq_and_spare_the_valid_ones(
        stack: Settings, es: Elasticsearch, national_registry: list[Organization],
        template: dict[str, Any], tmp_path: Path) -> None:
    strategy = st.lists(hostile_records(template), min_size=HOSTILE, max_size=HOSTILE)

    @settings(max_examples=1, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(batch=strategy)
    def check(batch: list[Hostile]) -> None:
        _run(stack, es, national_registry, batch, tmp_path)

    check()


def _run(stack: Settings, es: Elasticsearch, registry: list[Organization],
         batch: list[Hostile], tmp_path: Path) -> None:
    signers = simulated_agents(registry, AGENT_SEED)[1]
    # Hostile records are keyed and signed as the template's establishment, whose agent
    # would have sent them: only their own defect can refuse them.
    org_id = _template(registry)["organization"]["id"]
    sim = Simulation(registry, seed=int(time.time()) % 10**6 + 17, total=HOSTILE + 1,
                     start=datetime.now(UTC) - timedelta(minutes=5), span=timedelta(minutes=4),
                     scenarios=[], malformed=0)
    valid = list(sim)
    sentinel = valid.pop()

    with fresh_pipeline(stack, tmp_path, "hostile") as pipeline:
        producer = stack.kafka.producer(**{"message.max.bytes": 4 * 1024 * 1024})
        positions: dict[int, tuple[int, int]] = {}
        failed: list[str] = []

        def send(index: int, key: bytes, value: bytes, headers: Any) -> None:
            def done(err: Any, msg: Any) -> None:
                if err is not None:
                    failed.append(str(err))
                else:
                    positions[index] = (msg.partition(), msg.offset())
            producer.produce(EVENTS_RAW.name, key=key, value=value, headers=headers,
                             on_delivery=done)
            producer.poll(0)

        before = end_offsets(stack.kafka, EVENTS_RAW.name)
        for i, ((kind, value, signed, _), good) in enumerate(zip(batch, valid, strict=True)):
            send(2 * i + 1, good.key, good.value,
                 signers[good.key.decode()].headers(good.value))
            headers = None
            if signed:
                signed_bytes = value + b" " if kind == "tampered" else value
                headers = signers[org_id].headers(signed_bytes)
            send(2 * i, org_id.encode(), value, headers)
        assert producer.flush(60) == 0 and not failed, failed
        after = end_offsets(stack.kafka, EVENTS_RAW.name)
        ranges = {p: (before.get(p, 0), hi) for p, hi in after.items()}

        letters = _wait(es, ranges, {positions[2 * i] for i in range(HOSTILE)},
                        [g.document_id for g in valid if g.document_id], pipeline.services)
        for i, (kind, value, _, expected) in enumerate(batch):
            found = letters.get(positions[2 * i], [])
            allowed = expected if isinstance(expected, frozenset) else {expected}
            assert len(found) == 1 and found[0]["reason"] in allowed, (
                f"{kind} record {value[:80]!r}… ended as {[d['reason'] for d in found]}, "
                f"expected {sorted(allowed)}")
            assert found[0]["detail"] and found[0]["original_size"] == len(value)
        for i in range(HOSTILE):
            assert positions[2 * i + 1] not in letters, "a valid record was dead-lettered"

        ids = [g.document_id for g in valid if g.document_id]
        counts = event_id_counts(es, ids)
        assert counts == dict.fromkeys(ids, 1), "valid records must be indexed exactly once"
        _assert_untouched(es, valid)

        assert pipeline.services["processor"].alive, pipeline.services["processor"].tail(40)
        producer.produce(EVENTS_RAW.name, key=sentinel.key, value=sentinel.value,
                         headers=signers[sentinel.key.decode()].headers(sentinel.value))
        assert producer.flush(30) == 0
        deadline = time.monotonic() + 120
        while not event_id_counts(es, [sentinel.document_id or ""]):
            assert time.monotonic() < deadline, "the processor no longer processes records"
            time.sleep(1)


def _wait(es: Elasticsearch, ranges: dict[int, tuple[int, int]],
          hostile: set[tuple[int, int]], valid_ids: list[str],
          services: dict[str, Any]) -> dict[tuple[int, int], list[dict[str, Any]]]:
    deadline = time.monotonic() + 300
    while True:
        for service in services.values():
            assert service.alive, f"{service.name} died:\n{service.tail(40)}"
        letters: dict[tuple[int, int], list[dict[str, Any]]] = {}
        for letter in dead_letters_for_offsets(es, ranges):
            where = (letter["origin"]["partition"], letter["origin"]["offset"])
            letters.setdefault(where, []).append(letter)
        indexed = len(event_id_counts(es, valid_ids))
        if (hostile <= letters.keys() and indexed == len(valid_ids)) \
                or time.monotonic() > deadline:
            return letters
        time.sleep(2)


def _assert_untouched(es: Elasticsearch, valid: list[Any]) -> None:
    """What the agent sent is what an operator finds (the registry may only fill in the
    establishment's name and region, which the simulator already sends identical)."""
    by_id = {g.document_id: json.loads(g.value) for g in valid}
    hits = es.search(index=indices.EVENTS.alias, size=len(by_id),
                     query={"ids": {"values": list(by_id)}})["hits"]["hits"]
    assert len(hits) == len(by_id)
    for hit in hits:
        sent, stored = by_id[hit["_id"]], hit["_source"]
        # event.id is the national id (the _id); the agent's is kept beside it.
        assert stored["event"]["id"] == hit["_id"]
        assert stored["vigie"]["agent_event_id"] == sent["event"]["id"]
        for path in UNTOUCHED:
            assert _same(_get(stored, path), _get(sent, path)), (hit["_id"], path)


UNTOUCHED = (("@timestamp",), ("message",), ("event", "action"),
             ("event", "code"), ("event", "outcome"), ("organization", "id"),
             ("host", "name"), ("user", "name"), ("process", "command_line"))


def _get(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)  # type: ignore[assignment]
    return doc


def _same(stored: Any, sent: Any) -> bool:
    """Equal, reading timestamps as instants (``Z`` and ``+00:00`` are the same time)."""
    if isinstance(sent, str) and isinstance(stored, str) and sent[:4].isdigit():
        try:
            return datetime.fromisoformat(sent) == datetime.fromisoformat(stored)
        except ValueError:
            return sent == stored
    return bool(stored == sent)
