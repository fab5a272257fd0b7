"""What the correlation stage must produce for a run, computed in-process, and what it did.

``expected_incidents`` replays a simulation through the same validation, id binding (national
ids), Sigma engine and incident logic as the processor, one establishment at a time in
production order: it is the uninterrupted run that a run on the real stack (killed or not) must
converge to.
"""

from __future__ import annotations

import json
from datetime import timedelta
from functools import cache
from typing import Any

from elasticsearch import Elasticsearch

from processors.classify import Document, SigmaClassifier
from processors.detection.correlation.evaluate import DEFAULT_LATENESS_S, Correlator
from processors.detection.correlation.signals import as_signal, to_detection
from processors.detection.engine import Engine
from processors.incidents.config import load_scoring
from processors.incidents.lifecycle import correlate, to_incident
from processors.validate import Refused, Validator
from producers.simulator.simulation import SimRecord
from schemas import indices
from schemas.organization import Organization


@cache
def classifier() -> SigmaClassifier:
    return SigmaClassifier(Engine.from_paths())


def expected_incidents(records: list[SimRecord], registry: list[Organization]
                       ) -> dict[str, tuple[str, int, int]]:
    """incident id → (severity, detections, events), as an uninterrupted run makes them."""
    validator = Validator({o.id: o for o in registry}, timedelta(minutes=5))
    scoring = load_scoring()
    correlator = Correlator(classifier().correlations, DEFAULT_LATENESS_S)
    windows: dict[str, Any] = {}
    states: dict[str, list[dict[str, Any]]] = {}
    out: dict[str, tuple[str, int, int]] = {}
    for record in records:
        try:
            event = validator.validate(record.value, record.key)
        except Refused:
            continue
        verdict = classifier().classify(Document(event, json.loads(record.value)))
        found = list(verdict.detections)
        for signal in verdict.signals:  # Sigma correlation rules, as the processor runs them
            outcome = correlator.feed(signal.organization.id, as_signal(signal), windows.get)
            for key, window in outcome.updates.items():
                if window is None:
                    windows.pop(key, None)
                else:
                    windows[key] = window
            found += [to_detection(m) for m in outcome.matches if m.correlation.published]
        for detection in found:
            org = detection.organization.id
            state = correlate(states.setdefault(org, []), detection, scoring)
            if state is not None:
                incident = to_incident(state, scoring)
                out[incident.id] = (incident.severity.value, incident.counts.detections,
                                    incident.counts.events)
    return out


def incidents_in_es(es: Elasticsearch, ids: set[str]) -> dict[str, dict[str, Any]]:
    es.indices.refresh(index=indices.INCIDENTS.alias, ignore_unavailable=True)
    if not ids or not es.indices.exists(index=indices.INCIDENTS.alias):
        return {}
    hits = es.search(index=indices.INCIDENTS.alias, size=len(ids),
                     query={"ids": {"values": sorted(ids)}})["hits"]["hits"]
    return {h["_id"]: h["_source"] for h in hits}


def campaigns_linking(es: Elasticsearch, incident_ids: set[str]) -> list[dict[str, Any]]:
    es.indices.refresh(index=indices.INCIDENTS.alias, ignore_unavailable=True)
    hits = es.search(index=indices.INCIDENTS.alias, size=100, query={"bool": {"filter": [
        {"term": {"scope": "national_campaign"}},
        {"terms": {"linked_incident_ids": sorted(incident_ids)}}]}})["hits"]["hits"]
    return [h["_source"] for h in hits]
