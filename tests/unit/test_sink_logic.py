"""Sink logic that needs no server: routing to indices, ids, backoff, template shape."""

from __future__ import annotations

import json
import random

import pytest

from runtime.backoff import Backoff
from schemas import indices
from schemas.organization import Region
from sinks.elasticsearch.bulk import Doc, _body, pieces
from sinks.elasticsearch.templates import template_body
from sinks.routing import MAX_INCIDENT_VERSION, Unroutable, route


def test_events_go_to_the_month_of_their_own_timestamp() -> None:
    value = json.dumps({"@timestamp": "2026-02-28T23:59:59Z",
                        "event": {"id": "a" * 32}}).encode()
    doc = route("events.classified", value)
    assert (doc.index, doc.id, doc.source) == ("vigie-events-2026.02", "a" * 32, value)


def test_dead_letters_and_incidents_are_not_monthly() -> None:
    assert route("events.dlq", b'{"id": "x", "@timestamp": "2026-01-01T00:00:00Z"}').index == (
        "vigie-dlq-000001")
    assert route("incidents", b'{"id": "y"}').index == "vigie-incidents-000001"


@pytest.mark.parametrize("value", [b"", b"not json", b"[]", b'{"event": {}}',
                                   b'{"event": {"id": "a"}, "@timestamp": "yesterday"}',
                                   b'{"event": {"id": 5}, "@timestamp": "2026-01-01T00:00:00Z"}'])
def test_unroutable_records_are_explained(value: bytes) -> None:
    with pytest.raises(Unroutable):
        route("events.classified", value)


def test_bulk_body_is_ndjson_with_our_ids() -> None:
    body = _body([Doc("i1", "id1", b'{"a":1}'), Doc("i2", "id2", b'{"b":2}')])
    lines = body.decode().splitlines()
    assert json.loads(lines[0]) == {"index": {"_index": "i1", "_id": "id1"}}
    assert lines[1] == '{"a":1}' and len(lines) == 4 and body.endswith(b"\n")


def test_backoff_grows_with_jitter_under_a_cap() -> None:
    backoff = Backoff(base=0.5, cap=8, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(12)]
    assert all(0 <= d <= 8 for d in delays)
    assert max(delays[6:]) > max(delays[:2])
    backoff.reset()
    assert backoff.next_delay() <= 0.5


def test_templates_cover_every_family_with_region_aliases() -> None:
    for family in indices.ALL_FAMILIES:
        body = template_body(family)
        assert body["index_patterns"] == [f"{family.alias}-*"]
        assert family.alias in body["template"]["aliases"]
    events = template_body(indices.EVENTS)["template"]
    assert len([a for a in events["aliases"] if a != "vigie-events"]) == len(Region)
    props = events["mappings"]["properties"]
    assert props["source"]["properties"]["ip"]["type"] == "ip"
    assert props["process"]["properties"]["command_line"]["fields"]["text"]["type"] == "text"


def _incident_record(version: int, detections: int, scope: str = "establishment") -> bytes:
    return json.dumps({"id": "c" * 32, "scope": scope, "version": version,
                       "counts": {"detections": detections}}).encode()


def test_an_absurd_incident_version_is_refused_not_kept_forever() -> None:
    """The upsert keeps the highest version: 2^62 would freeze the incident. It is refused
    (the consumer dead-letters it as ``schema``) and the real versions keep winning."""
    with pytest.raises(Unroutable, match="above"):
        route("incidents", _incident_record(2**62, 2**62))
    with pytest.raises(Unroutable, match="above"):
        route("incidents", _incident_record(MAX_INCIDENT_VERSION + 1, 0, "national_campaign"))
    with pytest.raises(Unroutable, match="detections"):  # more versions than evidence
        route("incidents", _incident_record(1000, 3))
    assert route("incidents", _incident_record(4, 3)).version == 4
    assert route("incidents", _incident_record(40, 0, "national_campaign")).version == 40


def test_every_version_the_incident_stage_publishes_is_routable() -> None:
    """The bound is the processor's own accounting (one version per detection, one to
    resolve): checked against the stage itself, so that a change there shows here."""
    from datetime import timedelta

    from processors.incidents.config import load_scoring
    from processors.incidents.lifecycle import IncidentStage, Tick
    from tests.unit.incident_support import START, detection

    scoring = load_scoring()
    stage = IncidentStage(scoring)
    stored: list = []
    published = []
    for n in range(40):
        changes = stage.handle(stored, detection(n, "high", minute=n % 5))
        stored = changes.stored if changes.stored is not None else stored
        published += changes.incidents
    quiet = timedelta(minutes=scoring.windows.resolve_after_minutes + 10)
    published += stage.handle(stored, Tick(START + quiet)).incidents
    assert published and published[-1].status == "resolved"
    for incident in published:
        assert route("incidents", incident.to_json_bytes()).version == incident.version


def test_a_large_batch_leaves_in_requests_elasticsearch_accepts() -> None:
    # 300 dead letters of ~1 MB each: one request would be ~300 MB, above the 100 MB that
    # Elasticsearch accepts by default (it closes the connection: a transport error, retried
    # forever).
    docs = [Doc("vigie-dlq", f"id{i}", b"x" * 1_000_000) for i in range(300)]
    runs = pieces(docs, max_bytes=32 * 1024 * 1024)
    assert [d.id for run in runs for d in run] == [d.id for d in docs]  # all, in order
    assert all(sum(len(d.source) for d in run) <= 32 * 1024 * 1024 for run in runs)
    assert len(runs) == 10
    huge = Doc("vigie-dlq", "big", b"x" * 40_000_000)
    assert pieces([docs[0], huge, docs[1]], max_bytes=32 * 1024 * 1024) == [
        [docs[0]], [huge], [docs[1]]]
    assert pieces([]) == []
