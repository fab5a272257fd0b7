"""Index design and sink behaviour on the real Elasticsearch (and Kafka where the sink reads).

Test data goes to indices of months long past (2001) or to ids of its own, and is removed at
the end, because the stack is shared with other sessions.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from runtime.settings import Settings
from schemas import indices
from schemas.event import SecurityEvent
from schemas.identity import dead_letter_id
from schemas.incident import Incident
from schemas.organization import Organization
from schemas.topics import EVENTS_CLASSIFIED, INCIDENTS
from sinks.elasticsearch.bulk import Doc
from sinks.elasticsearch.upsert import write_latest
from soc.retention import apply_retention
from tests.integration.sinking import fresh_group, produce, run_sink

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

BRETAGNE = Organization(id="350000001", name="CHU Rennes test", type="university_hospital",
                        region="bretagne")
CORSE = Organization(id="2A0000001", name="Centre hospitalier Ajaccio test", type="hospital",
                     region="corse")
OCCITANIE = Organization(id="310000001", name="Clinique Toulouse test", type="private_clinic",
                         region="occitanie")


def _hex() -> str:
    return uuid.uuid4().hex


def _event(when: datetime, **fields: Any) -> SecurityEvent:
    # Through JSON, as the wire does: the models are strict about Python types.
    return SecurityEvent.model_validate_json(json.dumps({
        "@timestamp": when.isoformat(), "event": {"id": _hex(), "category": ["process"]},
        "organization": BRETAGNE.model_dump(mode="json"), **fields}))


def _incident(orgs: list[Organization], version: int = 1, **fields: Any) -> Incident:
    now = datetime.now(UTC)
    return Incident.model_validate_json(json.dumps({
        "id": fields.pop("id", _hex()), "severity": "high", "category": "malicious_code",
        "origin": "malicious", "title": "test incident",
        "organizations": [o.model_dump(mode="json") for o in orgs],
        "first_seen": now.isoformat(), "last_seen": now.isoformat(), "version": version,
        # As the processor publishes them: one version per detection (``sinks.routing``).
        "counts": {"detections": version}, **fields}))


def _doc(incident: Incident) -> Doc:
    return Doc(indices.INCIDENTS.index_for(incident.first_seen), incident.id,
               incident.to_json_bytes(), version=incident.version)


@pytest.fixture()
def incident_ids(es: Elasticsearch) -> Iterator[list[str]]:
    """Ids the test writes to vigie-incidents; deleted afterwards."""
    ids: list[str] = []
    yield ids
    if ids:  # no _delete_by_query on the integ-test distribution (no reindex module)
        index = indices.INCIDENTS.index_for(datetime.min)
        es.bulk(operations=[{"delete": {"_index": index, "_id": i}} for i in ids],
                refresh=True)


def _ids(es: Elasticsearch, index: str, ids: list[str]) -> set[str]:
    result = es.search(index=index, query={"terms": {"id": ids}}, size=len(ids) + 10,
                       source=["id"])
    return {hit["_source"]["id"] for hit in result["hits"]["hits"]}


# ------------------------------------------------------------------------ mappings
def test_ip_range_and_command_line_wildcard_work(es: Elasticsearch) -> None:
    when = datetime(2001, 1, 15, tzinfo=UTC)
    index = indices.EVENTS.index_for(when)
    hit = _event(when, source={"ip": "10.20.3.4"},
                 process={"name": "powershell.exe", "command_line":
                          "powershell.exe -NoP -EncodedCommand SQBFAFgAIAAoAE4AZQB3AC0A"})
    miss = _event(when, source={"ip": "192.168.1.9"},
                  process={"name": "notepad.exe", "command_line": "notepad.exe C:\\a.txt"})
    try:
        for event in (hit, miss):
            es.index(index=index, id=event.id, document=json.loads(event.to_json_bytes()))
        es.indices.refresh(index=index)
        props = es.indices.get_mapping(index=index)[index]["mappings"]["properties"]
        assert props["source"]["properties"]["ip"]["type"] == "ip"
        assert props["process"]["properties"]["command_line"]["type"] == "keyword"

        def found(query: dict[str, Any]) -> set[str]:
            result = es.search(index=index, query=query)
            return {h["_id"] for h in result["hits"]["hits"]}

        assert found({"term": {"source.ip": "10.20.0.0/16"}}) == {hit.id}  # CIDR
        assert found({"range": {"source.ip": {"gte": "10.0.0.0",
                                              "lte": "10.255.255.255"}}}) == {hit.id}
        assert found({"wildcard": {"process.command_line": {
            "value": "*-encodedcommand*", "case_insensitive": True}}}) == {hit.id}
        assert found({"match": {"process.command_line.text": "EncodedCommand"}}) == {hit.id}
        # Aliases came from the template: the national one and the event's region.
        assert found({"ids": {"values": [hit.id]}}) == {hit.id}
        regional = es.search(index="vigie-events-bretagne", query={"ids": {"values": [hit.id]}})
        assert regional["hits"]["total"]["value"] == 1
    finally:
        es.indices.delete(index=index, ignore_unavailable=True)


# ------------------------------------------------------------------------ regional aliases
def test_regional_alias_shows_only_its_regions_incidents(es: Elasticsearch,
                                                         incident_ids: list[str]) -> None:
    rennes, ajaccio = _incident([BRETAGNE]), _incident([CORSE])
    campaign = _incident([BRETAGNE, OCCITANIE], scope="national_campaign",
                         linked_incident_ids=[rennes.id])
    incident_ids += [rennes.id, ajaccio.id, campaign.id]
    outcome = write_latest(es, [_doc(i) for i in (rennes, ajaccio, campaign)])
    assert len(outcome.written) == 3, outcome
    es.indices.refresh(index=indices.INCIDENTS.alias)
    assert _ids(es, "vigie-incidents-bretagne", incident_ids) == {rennes.id, campaign.id}
    assert _ids(es, "vigie-incidents-corse", incident_ids) == {ajaccio.id}
    assert _ids(es, "vigie-incidents-occitanie", incident_ids) == {campaign.id}
    assert _ids(es, "vigie-incidents-normandie", incident_ids) == set()
    assert _ids(es, indices.INCIDENTS.alias, incident_ids) == set(incident_ids)


# ------------------------------------------------------------------------ retention
def test_retention_deletes_only_indices_older_than_the_limit(es: Elasticsearch) -> None:
    names = ["vigie-alerts-2001.01", "vigie-alerts-2001.02", "vigie-alerts-2001.08"]
    for name in names:
        es.indices.create(index=name)
    try:
        now = datetime(2001, 8, 15, tzinfo=UTC)  # cutoff 180 days back: 2001-02-16
        dry = apply_retention(es, timedelta(days=180), dry_run=True, now=now,
                              families=[indices.ALERTS])
        assert [i.name for i in dry.delete] == ["vigie-alerts-2001.01"]
        assert all(es.indices.exists(index=n) for n in names)
        done = apply_retention(es, timedelta(days=180), now=now, families=[indices.ALERTS])
        assert [i.name for i in done.delete] == ["vigie-alerts-2001.01"]
        assert not es.indices.exists(index="vigie-alerts-2001.01")
        assert es.indices.exists(index="vigie-alerts-2001.02")  # its month ends after cutoff
        assert es.indices.exists(index="vigie-alerts-2001.08")  # the current month
        # Aliases of the family are never mistaken for indices, nor is another family.
        assert all(i.family == "vigie-alerts" for i in done.keep)
    finally:
        for name in names:
            es.indices.delete(index=name, ignore_unavailable=True)


# ------------------------------------------------------------------------ incident upsert
def _version(es: Elasticsearch, incident_id: str) -> int:
    doc = es.get(index=indices.INCIDENTS.index_for(datetime.min), id=incident_id)
    return int(doc["_source"]["version"])


def test_upsert_keeps_the_highest_version_out_of_order_and_in_batches(
        es: Elasticsearch, incident_ids: list[str]) -> None:
    key = _hex()
    incident_ids.append(key)
    states = {v: _incident([BRETAGNE], version=v, id=key, title=f"state {v}")
              for v in range(1, 7)}
    for v in (3, 1, 5, 2):  # one per call, out of order
        write_latest(es, [_doc(states[v])])
    assert _version(es, key) == 5
    outcome = write_latest(es, [_doc(states[v]) for v in (4, 6, 2)])  # one batch
    assert len(outcome.written) == 1 and len(outcome.superseded) == 2
    assert _version(es, key) == 6
    outcome = write_latest(es, [_doc(states[1])])  # a replay of an old state
    assert len(outcome.superseded) == 1 and not outcome.written
    doc = es.get(index=indices.INCIDENTS.index_for(datetime.min), id=key)["_source"]
    assert (doc["version"], doc["title"]) == (6, "state 6")


def test_concurrent_writers_converge_to_the_highest_version(
        es: Elasticsearch, incident_ids: list[str]) -> None:
    """Two sinks racing on one incident: if_seq_no conflicts are re-read, never lost."""
    key = _hex()
    incident_ids.append(key)
    errors: list[BaseException] = []

    def writer(versions: list[int]) -> None:
        try:
            for v in versions:
                outcome = write_latest(es, [_doc(_incident([BRETAGNE], version=v, id=key))])
                assert not outcome.rejected and not outcome.retry, outcome
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(list(range(start, 61, 2)),))
               for start in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert _version(es, key) == 60


def test_sink_upserts_incidents_from_kafka_in_any_order(
        stack: Settings, es: Elasticsearch, incident_ids: list[str]) -> None:
    key = _hex()
    incident_ids.append(key)
    group = fresh_group(stack.kafka, [INCIDENTS.name])
    records = [(key.encode(), _incident([CORSE], version=v, id=key).to_json_bytes())
               for v in (2, 5, 3, 1, 4)]
    produce(stack.kafka, INCIDENTS.name, records)
    stats = run_sink(stack, es, [INCIDENTS.name], group, max_docs=2)
    assert stats.read == 5 and stats.batches >= 3
    assert _version(es, key) == 5
    produce(stack.kafka, INCIDENTS.name,
            [(key.encode(), _incident([CORSE], version=3, id=key).to_json_bytes())])
    run_sink(stack, es, [INCIDENTS.name], group)
    assert _version(es, key) == 5


# ------------------------------------------------------------------------ dead letters
def test_mapping_conflict_goes_to_the_dlq_and_the_sink_keeps_going(
        stack: Settings, es: Elasticsearch) -> None:
    when = datetime(2001, 2, 10, tzinfo=UTC)
    index = indices.EVENTS.index_for(when)
    good, after = _event(when), _event(when)
    bad = json.loads(_event(when).to_json_bytes())
    bad["source"] = {"ip": "not-an-ip"}  # valid JSON, wrong type for an `ip` field
    group = fresh_group(stack.kafka, [EVENTS_CLASSIFIED.name])
    key = BRETAGNE.id.encode()
    positions = produce(stack.kafka, EVENTS_CLASSIFIED.name, [
        (key, good.to_json_bytes()), (key, json.dumps(bad).encode()),
        (key, after.to_json_bytes())])
    letter_id = dead_letter_id(EVENTS_CLASSIFIED.name, *positions[1])
    try:
        stats = run_sink(stack, es, [EVENTS_CLASSIFIED.name], group)
        # indexed counts every write acknowledged, the dead letter included.
        assert (stats.read, stats.indexed, stats.dead_lettered) == (3, 3, 1)
        es.indices.refresh(index=f"{index},{indices.DLQ.alias}")
        assert es.exists(index=index, id=good.id) and es.exists(index=index, id=after.id)
        assert not es.exists(index=index, id=bad["event"]["id"])
        letter = es.get(index=indices.DLQ.index_for(when), id=letter_id)["_source"]
        assert letter["reason"] == "index_rejected"
        assert "source.ip" in letter["detail"] and "not-an-ip" in letter["detail"]
        assert json.loads(base64.b64decode(letter["original_b64"])) == bad
    finally:
        es.indices.delete(index=index, ignore_unavailable=True)
        es.options(ignore_status=404).delete(index=indices.DLQ.index_for(when), id=letter_id)


def test_header_routed_records_are_indexed_rejected_or_dead_lettered_then_committed(
        stack: Settings, es: Elasticsearch) -> None:
    """The sink's plain path (routing headers straight into bulk lines, no document decoded)
    keeps the guarantees: written under the processor's ``_id``; an item Elasticsearch
    rejects and a record whose headers are forged both go to the dead-letter index with
    their reason; the offsets committed past the batch only after all that."""
    from confluent_kafka import TopicPartition

    from processors.outputs import document
    from schemas.routing import Routing

    when = datetime(2001, 4, 10, tzinfo=UTC)
    index = indices.EVENTS.index_for(when)
    good, after, bad_event = _event(when), _event(when), _event(when)
    bad = json.loads(bad_event.to_json_bytes())
    bad["source"] = {"ip": "not-an-ip"}  # valid JSON, wrong type for an `ip` field
    outputs = [document(EVENTS_CLASSIFIED.name, b"k", e) for e in (good, after)]
    records = [(b"k", outputs[0].value), (b"k", json.dumps(bad).encode()),
               (b"k", good.to_json_bytes()), (b"k", outputs[1].value)]
    headers = [outputs[0].headers, Routing(index, bad_event.id).headers(),
               Routing(indices.INCIDENTS.index_for(when), _hex()).headers(),  # forged
               outputs[1].headers]
    group = fresh_group(stack.kafka, [EVENTS_CLASSIFIED.name])
    positions = produce(stack.kafka, EVENTS_CLASSIFIED.name, records, headers)
    letters = {reason: dead_letter_id(EVENTS_CLASSIFIED.name, *positions[n])
               for n, reason in ((1, "index_rejected"), (2, "schema"))}
    try:
        stats = run_sink(stack, es, [EVENTS_CLASSIFIED.name], group)
        assert (stats.read, stats.indexed, stats.dead_lettered) == (4, 4, 2)
        es.indices.refresh(index=f"{index},{indices.DLQ.alias}")
        assert es.get(index=index, id=good.id)["_source"]["event"]["id"] == good.id
        assert es.exists(index=index, id=after.id)
        assert not es.exists(index=index, id=bad_event.id)
        rejected = es.get(index=indices.DLQ.index_for(when),
                          id=letters["index_rejected"])["_source"]
        assert rejected["reason"] == "index_rejected" and "source.ip" in rejected["detail"]
        assert json.loads(base64.b64decode(rejected["original_b64"])) == bad
        forged = es.get(index=indices.DLQ.index_for(when), id=letters["schema"])["_source"]
        assert forged["reason"] == "schema" and "vigie-incidents" in forged["detail"]
        consumer = stack.kafka.consumer(group)
        try:
            committed = consumer.committed(
                [TopicPartition(EVENTS_CLASSIFIED.name, p) for p, _ in positions], timeout=30)
        finally:
            consumer.close()
        highest = {p: max(o for q, o in positions if q == p) for p, _ in positions}
        assert {tp.partition: tp.offset for tp in committed} == {
            p: o + 1 for p, o in highest.items()}
    finally:
        es.indices.delete(index=index, ignore_unavailable=True)
        for letter_id in letters.values():
            es.options(ignore_status=404).delete(index=indices.DLQ.index_for(when),
                                                 id=letter_id)


# ------------------------------------------------------------------------ operator queries
def test_operator_filters_and_search(es: Elasticsearch, incident_ids: list[str]) -> None:
    from schemas.taxonomy import Severity
    from soc.incidents import IncidentFilter, find_incidents, get_incident

    critical = _incident([CORSE], severity="critical", declarable=True,
                         declarable_reasons=["care safety"], title="Ransomware on PACS")
    medium = _incident([CORSE], severity="medium", category="human_error",
                       origin="non_malicious", title="Misdirected e-mail")
    resolved = _incident([CORSE], severity="high", status="resolved", title="Old phishing")
    incident_ids += [critical.id, medium.id, resolved.id]
    write_latest(es, [_doc(i) for i in (critical, medium, resolved)])
    es.indices.refresh(index=indices.INCIDENTS.alias)

    def ids(f: IncidentFilter, text: str | None = None) -> set[str]:
        return {i["id"] for i in find_incidents(es, f, text, limit=100)[1]}

    here = {"establishment": CORSE.id, "region": "corse"}
    assert ids(IncidentFilter(**here)) == set(incident_ids)
    assert ids(IncidentFilter(**here, min_severity=Severity.HIGH)) == {critical.id, resolved.id}
    assert ids(IncidentFilter(**here, status="open", declarable=True)) == {critical.id}
    assert ids(IncidentFilter(**here, category="human_error")) == {medium.id}
    assert ids(IncidentFilter(**here), "ransomware") == {critical.id}
    assert ids(IncidentFilter(establishment="Ajaccio test", region="corse")) == set(incident_ids)
    assert ids(IncidentFilter(**{**here, "region": "bretagne"})) == set()
    assert get_incident(es, critical.id[:12])["title"] == "Ransomware on PACS"


def test_alerts_are_indexed_monthly_under_their_own_id(stack: Settings,
                                                       es: Elasticsearch) -> None:
    from schemas.alert import Alert
    from schemas.topics import ALERTS

    when = datetime(2001, 3, 5, tzinfo=UTC)
    alert = Alert.model_validate_json(json.dumps({
        "id": _hex(), "@timestamp": when.isoformat(), "rule": "severity-high",
        "incident_id": _hex(), "status": "firing", "severity": "high",
        "summary": "test alert", "labels": {"region": "corse"}}))
    index = indices.ALERTS.index_for(when)
    group = fresh_group(stack.kafka, [ALERTS.name])
    try:
        record = (alert.incident_id.encode(), alert.to_json_bytes())
        produce(stack.kafka, ALERTS.name, [record, record])  # a duplicate delivery
        run_sink(stack, es, [ALERTS.name], group)
        es.indices.refresh(index=index)
        assert index == "vigie-alerts-2001.03"
        assert es.get(index=index, id=alert.id)["_source"]["summary"] == "test alert"
        assert es.count(index=indices.ALERTS.alias, query={"term": {"id": alert.id}})[
            "count"] == 1
    finally:
        es.indices.delete(index=index, ignore_unavailable=True)
