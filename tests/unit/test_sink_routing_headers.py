"""Routing headers (``schemas.routing``): the processor writes where each document goes, the
sink trusts only what the processor could have written, and records without them still go
where they always went."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

import runtime.kafka
import sinks.routing
from processors.outputs import Output, document
from runtime.kafka import KafkaConnection
from schemas.alert import Alert
from schemas.deadletter import DeadLetter, KafkaCoordinates, Reason
from schemas.event import SecurityEvent
from schemas.identity import dead_letter_id, stable_id
from schemas.incident import Incident
from schemas.routing import (
    ID,
    INDEX,
    MAX_INCIDENT_VERSION,
    OPERATION,
    VERSION,
    BadRouting,
    Operation,
    Routing,
    parse,
    plain,
)
from sinks.consumer import Sink, SinkConfig
from sinks.elasticsearch.bulk import Doc, _body
from sinks.routing import Unroutable, route, route_all
from tests.unit.incident_support import CHU, detection

WHEN = datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC)
EVENT_ID = stable_id("national-event", CHU.id, "x")


def _event() -> SecurityEvent:
    return SecurityEvent.model_validate({
        "@timestamp": WHEN.isoformat(), "event": {"id": EVENT_ID},
        "organization": CHU.model_dump(mode="json"), "message": "logon failure"}, strict=False)


def _incidents() -> list[Incident]:
    from processors.incidents.config import load_scoring
    from processors.incidents.lifecycle import IncidentStage

    stage = IncidentStage(load_scoring())
    stored: list[Any] = []
    published: list[Incident] = []
    for n in range(3):
        changes = stage.handle(stored, detection(n, "high", minute=n))
        stored = changes.stored if changes.stored is not None else stored
        published += changes.incidents
    return published


def _alert() -> Alert:
    return Alert.model_validate({
        "id": stable_id("alert", 1), "@timestamp": WHEN.isoformat(), "rule": "page-critical",
        "incident_id": stable_id("incident", 1), "status": "firing", "severity": "high",
        "summary": "brute force at CHU"}, strict=False)


def _letter() -> DeadLetter:
    return DeadLetter(id=dead_letter_id("events.raw", 0, 7), timestamp=WHEN, stage="processor",
                      reason=Reason.SCHEMA, detail="no event.id",
                      origin=KafkaCoordinates(topic="events.raw", partition=0, offset=7),
                      original_b64=base64.b64encode(b"{}").decode(), original_size=2)


def _outputs() -> list[tuple[str, Output]]:
    """What the processor sends to each topic the sink reads, built by its own helper."""
    outs = [("events.classified", document("events.classified", b"k", _event())),
            ("detections", document("detections", b"k", detection(1))),
            ("alerts", document("alerts", b"k", _alert())),
            ("events.dlq", document("events.dlq", b"k", _letter()))]
    outs += [("incidents", document("incidents", i.id.encode(), i)) for i in _incidents()]
    return outs


def test_headers_route_every_document_where_its_body_would() -> None:
    """Same index, ``_id``, bytes and version from the headers as from the decoded body: a
    rolling upgrade (some records with headers, some without) writes the same documents."""
    outputs = _outputs()
    assert {topic for topic, _ in outputs} == set(sinks.routing.TOPIC_TO_INDEX)
    for topic, out in outputs:
        assert out.headers is not None
        from_headers = route(topic, out.value, out.headers)
        from_body = route(topic, out.value)
        assert (from_headers.index, from_headers.id, from_headers.version) == (
            from_body.index, from_body.id, from_body.version), topic
        assert from_headers.source is out.value  # the bytes as they came, not re-encoded
    events = route("events.classified", outputs[0][1].value, outputs[0][1].headers)
    assert (events.index, events.id) == ("vigie-events-2026.02", EVENT_ID)


def test_a_batch_is_routed_as_each_record_alone() -> None:
    """``route_all`` (the sink's per-batch path: trusted headers straight into bulk lines)
    writes what ``route`` would, record by record: same index, ``_id``, bytes; incidents
    kept apart for the upsert; the unroutable with their reason."""
    outputs = _outputs()
    records = [_Message(topic, n, out.value, out.headers) for n, (topic, out) in
               enumerate(outputs)]
    records.append(_Message("events.classified", 99, outputs[0][1].value,
                            _headers(index="vigie-incidents-000001")))
    routed = route_all(records)
    expected = [route(r.topic(), r.value(), r.headers(), ref=r) for r in records[:-1]]
    plain_docs = [d for d in expected if d.version is None]
    assert [(routed.lines.doc(n).index, routed.lines.doc(n).id, routed.lines.doc(n).source,
             routed.lines.doc(n).ref) for n in range(len(routed.lines))] == [
        (d.index, d.id, d.source, d.ref) for d in plain_docs]
    assert [(d.id, d.version) for d in routed.docs] == [
        (d.id, d.version) for d in expected if d.version is not None]
    assert len(routed.docs) == len(_incidents())
    assert [(r.offset(), why.split(":")[0]) for r, why in routed.unroutable] == [
        (99, "routing headers refused")]
    for topic, out in outputs:
        if topic != "incidents":
            assert plain(topic, out.headers) is not None, topic  # the fast path is taken


def test_outputs_the_sink_does_not_read_carry_no_routing() -> None:
    out = document("vigie.correlation-inputs", b"k", detection(1))
    assert out.headers is None


def test_a_routed_document_is_not_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of the headers: no ``json.loads`` of events, detections, alerts, letters."""

    def no_decoding(*_: Any, **__: Any) -> Any:
        raise AssertionError("document decoded")

    outputs = [(t, o) for t, o in _outputs() if t != "incidents"]
    monkeypatch.setattr(sinks.routing.orjson, "loads", no_decoding)
    for topic, out in outputs:
        assert route(topic, out.value, out.headers).source == out.value
    with pytest.raises(AssertionError, match="decoded"):  # the fallback path does decode
        route("events.classified", outputs[0][1].value)


def _headers(index: str = "vigie-events-2026.02", doc_id: str = EVENT_ID,
             op: str = "index", version: str | None = None) -> list[tuple[str, bytes]]:
    out = [(INDEX, index.encode()), (ID, doc_id.encode()), (OPERATION, op.encode())]
    return out + ([(VERSION, version.encode())] if version is not None else [])


def test_header_encoding_round_trips() -> None:
    routing = Routing("vigie-incidents-000001", EVENT_ID, Operation.UPSERT, 12)
    assert parse("incidents", routing.headers()) == routing
    plain = Routing("vigie-alerts-2026.11", EVENT_ID)
    assert parse("alerts", dict(plain.headers())) == plain  # a dict, as clients may give
    assert parse("events.classified", None) is None
    assert parse("events.classified", [("traceparent", b"00-ab")]) is None  # not routing


@pytest.mark.parametrize(("topic", "headers", "why"), [
    ("events.classified", _headers(index="vigie-incidents-000001"), "not one of vigie-events-"),
    ("events.classified", _headers(index="vigie-detections-2026.02"), "not one of"),
    ("events.classified", _headers(index="vigie-events-2026.13"), "not one of"),
    ("events.classified", _headers(index="vigie-events-2026.02,vigie-dlq-000001"), "not one"),
    ("incidents", _headers(index="vigie-incidents-000002", op="upsert", version="1"),
     "not one of"),
    ("detections", _headers(index="vigie-detections-2026.02", doc_id="a" * 600), "characters"),
    ("detections", _headers(index="vigie-detections-2026.02", doc_id="A" * 32), "32-hex"),
    ("detections", _headers(index="vigie-detections-2026.02", doc_id="../" + "a" * 29),
     "32-hex"),
    ("incidents", _headers(index="vigie-incidents-000001", op="upsert", version="1e9"),
     "not a decimal"),
    ("incidents", _headers(index="vigie-incidents-000001", op="upsert", version="-1"),
     "not a decimal"),
    ("incidents", _headers(index="vigie-incidents-000001", op="upsert",
                           version=str(MAX_INCIDENT_VERSION + 1)), "above"),
    ("incidents", _headers(index="vigie-incidents-000001", op="upsert"), "version"),
    ("incidents", _headers(index="vigie-incidents-000001", op="index", version="3"),
     "not allowed"),
    ("events.classified", _headers(op="upsert"), "not allowed"),
    ("events.classified", _headers(op="delete"), "unknown operation"),
    ("events.classified", _headers(version="3"), "unversioned"),
    ("events.classified", _headers()[:2], "missing: vigie-op"),
    ("events.classified", [*_headers(), (INDEX, b"vigie-events-2026.03")], "repeated"),
    ("events.classified", _headers(index="vigie-événements"), "not ASCII"),
    ("incidents", {INDEX: "vigie-incidents-000001", ID: EVENT_ID, OPERATION: "upsert",
                   VERSION: "\u0661\u0662"}, "not ASCII"),  # Arabic-Indic "12"
    ("events.classified", [*_headers()[:2], (OPERATION, None)], "no value"),
    ("events.classified", [*_headers(), (VERSION, None)], "no value"),
])
def test_forged_routing_is_refused_with_its_reason(topic: str, headers: Any, why: str) -> None:
    assert plain(topic, headers) is None  # the fast path leaves the verdict to parse
    with pytest.raises(BadRouting, match=why):
        parse(topic, headers)
    with pytest.raises(Unroutable, match="routing headers refused"):
        route(topic, b'{"id": "' + EVENT_ID.encode() + b'"}', headers)


def test_incident_headers_must_agree_with_the_body_whose_checks_still_hold() -> None:
    incident = _incidents()[-1]
    value = incident.to_json_bytes()
    good = Routing("vigie-incidents-000001", incident.id, Operation.UPSERT, incident.version)
    assert route("incidents", value, good.headers()).version == incident.version
    other = Routing("vigie-incidents-000001", incident.id, Operation.UPSERT,
                    incident.version + 1)
    with pytest.raises(Unroutable, match="disagree"):
        route("incidents", value, other.headers())
    # A version the processor cannot produce is refused even when header and body agree.
    doc = json.loads(value) | {"version": 1000}
    forged = Routing("vigie-incidents-000001", incident.id, Operation.UPSERT, 1000)
    with pytest.raises(Unroutable, match="detections"):
        route("incidents", json.dumps(doc).encode(), forged.headers())


def test_the_bulk_body_escapes_what_is_not_a_plain_id() -> None:
    """Action lines are spliced for plain ids; anything else (a legacy record's odd id, a
    conditional write) still goes through JSON encoding."""
    docs = [Doc("vigie-events-2026.02", EVENT_ID, b"{}"),
            Doc("vigie-dlq-000001", 'a"b\\c\u00e9', b"{}"),
            Doc("vigie-incidents-000001", EVENT_ID, b"{}", op="index", if_seq_no=4,
                if_primary_term=1),
            Doc("vigie-incidents-000001", EVENT_ID, b"{}", op="create")]
    actions = [json.loads(line) for line in _body(docs).splitlines()[::2]]
    assert actions == [
        {"index": {"_index": "vigie-events-2026.02", "_id": EVENT_ID}},
        {"index": {"_index": "vigie-dlq-000001", "_id": 'a"b\\c\u00e9'}},
        {"index": {"_index": "vigie-incidents-000001", "_id": EVENT_ID, "if_seq_no": 4,
                   "if_primary_term": 1}},
        {"create": {"_index": "vigie-incidents-000001", "_id": EVENT_ID}}]


class _Message:
    def __init__(self, topic: str, offset: int, value: bytes,
                 headers: list[tuple[str, Any]] | None) -> None:
        self._topic, self._offset, self._value, self._headers = topic, offset, value, headers

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return b"750000001"

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, Any]] | None:
        return self._headers

    def error(self) -> None:
        return None


class _Consumer:
    def __init__(self) -> None:
        self.committed: list[Any] = []

    def commit(self, offsets: list[Any], asynchronous: bool) -> None:
        self.committed += offsets


class _Elasticsearch:
    def __init__(self) -> None:
        self.written: dict[tuple[str, str], dict[str, Any]] = {}

    def bulk(self, operations: bytes, refresh: bool,
             filter_path: list[str] | None = None) -> dict[str, Any]:
        lines = operations.splitlines()
        items = []
        for action, source in zip(lines[::2], lines[1::2], strict=True):
            ((op, meta),) = json.loads(action).items()
            self.written[(meta["_index"], meta["_id"])] = json.loads(source)
            items.append({op: {"_id": meta["_id"], "status": 201}})
        return {"errors": False, "items": items}


def test_the_sink_writes_routed_and_legacy_records_and_dead_letters_forged_ones(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One batch: a record with headers, the same kind of record without (an older processor
    or a replayed dead letter), one whose headers route an event into the incidents index.
    Two documents written, one dead letter naming the refused index, offsets committed."""
    consumer = _Consumer()
    monkeypatch.setattr(runtime.kafka, "Consumer", lambda config: consumer)
    config = SinkConfig(kafka=KafkaConnection(), group="vigie-sink-unit",
                        topics=["events.classified"], max_docs=10, max_bytes=10**6,
                        max_wait_s=1.0)
    es = _Elasticsearch()
    sink = Sink(config, es)  # type: ignore[arg-type]  # the stand-in has bulk only
    routed = document("events.classified", b"k", _event())
    legacy_event = _event().model_copy(update={"event": _event().event.model_copy(
        update={"id": stable_id("national-event", CHU.id, "y")})})
    legacy = legacy_event.to_json_bytes()
    forged = _headers(index="vigie-incidents-000001")
    for offset, (value, headers) in enumerate(
            [(routed.value, routed.headers), (legacy, None), (routed.value, forged)]):
        sink._add(_Message("events.classified", offset, value, headers))
    sink.flush()
    events = {k: v for k, v in es.written.items() if k[0].startswith("vigie-events-")}
    assert set(events) == {("vigie-events-2026.02", EVENT_ID),
                           ("vigie-events-2026.02", legacy_event.event.id)}
    letters = [v for k, v in es.written.items() if k[0] == "vigie-dlq-000001"]
    assert len(letters) == 1 and letters[0]["reason"] == "schema"
    assert "vigie-incidents-000001" in letters[0]["detail"]
    assert letters[0]["origin"]["offset"] == 2
    assert not any(k[0].startswith("vigie-incidents") for k in es.written)
    assert (sink.stats.read, sink.stats.dead_lettered) == (3, 1)
    assert [(tp.topic, tp.offset) for tp in consumer.committed] == [("events.classified", 3)]


def test_a_timestamp_with_an_offset_lands_in_the_same_month_both_ways() -> None:
    """The month is the one written in the document's timestamp, with or without headers."""
    paris = timezone(timedelta(hours=2))
    event = _event().model_copy(update={"timestamp": datetime(2026, 3, 1, 1, 0, tzinfo=paris)})
    out = document("events.classified", b"k", event)
    assert route("events.classified", out.value, out.headers).index == route(
        "events.classified", out.value).index
