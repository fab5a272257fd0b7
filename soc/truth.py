"""``vigie evaluate``: the incidents in Elasticsearch against the simulator's ground truth.

An incident belongs to a run when one of its detections is on one of the run's events (the
truth file lists them), so runs sharing a cluster do not pollute each other's scores. A
scripted scenario is recalled in an establishment when an incident there holds one of the
scenario's events; precision is the share of the run's incidents that hold scenario events.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch

from schemas import indices

_CHUNK = 5000


def read_truth(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    scenarios, summary = [], {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["kind"] == "scenario":
            scenarios.append(record)
        elif record["kind"] == "summary":
            summary = record
    if not summary:
        raise ValueError(f"{path}: no summary line (was the simulation interrupted?)")
    return scenarios, summary


def _incidents(es: Elasticsearch) -> list[dict[str, Any]]:
    es.indices.refresh(index=indices.INCIDENTS.alias, ignore_unavailable=True)
    if not es.indices.exists(index=indices.INCIDENTS.alias):
        return []
    hits = es.search(index=indices.INCIDENTS.alias, size=10_000,
                     query={"match_all": {}})["hits"]["hits"]
    return [h["_source"] for h in hits]


def _event_of_detection(es: Elasticsearch, ids: list[str]) -> dict[str, str]:
    es.indices.refresh(index=indices.DETECTIONS.alias, ignore_unavailable=True)
    found: dict[str, str] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        hits = es.search(index=indices.DETECTIONS.alias, size=len(chunk),
                         query={"terms": {"id": chunk}},
                         source={"includes": ["id", "event_id"]},
                         ignore_unavailable=True)["hits"]["hits"]
        found.update({h["_source"]["id"]: h["_source"]["event_id"] for h in hits})
    return found


def evaluate(es: Elasticsearch, truth: Path) -> dict[str, Any]:
    scenarios, summary = read_truth(truth)
    run_events = set(summary.get("event_ids", []))
    incidents = _incidents(es)
    establishment = [i for i in incidents if i["scope"] == "establishment"]
    events_of = _event_of_detection(es, [d for i in establishment for d in i["detection_ids"]])
    run_incidents: dict[str, set[str]] = {}
    for incident in establishment:
        events = {events_of[d] for d in incident["detection_ids"] if d in events_of}
        if events & run_events:
            run_incidents[incident["id"]] = events
    campaigns = [c for c in incidents if c["scope"] == "national_campaign"
                 and set(c["linked_incident_ids"]) & set(run_incidents)]

    per_scenario: dict[str, dict[str, Any]] = {}
    true_positive: set[str] = set()
    for scenario in scenarios:
        wanted = set(scenario["event_ids"])
        hits = {iid for iid, events in run_incidents.items() if events & wanted}
        true_positive |= hits
        orgs = {o["id"] for i in establishment if i["id"] in hits for o in i["organizations"]}
        expected = set(scenario["establishments"])
        entry = per_scenario.setdefault(scenario["scenario"], defaultdict(float))
        entry["instances"] += 1
        entry["establishments_expected"] += len(expected)
        entry["establishments_found"] += len(orgs & expected)
        entry["incidents"] += len(hits)
        # Precision: of the run's incidents in these establishments, those on the scenario.
        nearby = {i["id"] for i in establishment if i["id"] in run_incidents
                  and {o["id"] for o in i["organizations"]} & expected}
        entry["incidents_in_scenario_establishments"] += len(nearby)
        if len(expected) > 1:
            linked = [c for c in campaigns if set(c["linked_incident_ids"]) & hits]
            entry["campaigns"] += len(linked)
    out: dict[str, Any] = {"scenarios": {}}
    for name, entry in per_scenario.items():
        recall = (entry["establishments_found"] / entry["establishments_expected"]
                  if entry["establishments_expected"] else 0.0)
        nearby = entry["incidents_in_scenario_establishments"]
        precision = entry["incidents"] / nearby if nearby else 0.0
        out["scenarios"][name] = {**{k: int(v) for k, v in entry.items()},
                                  "recall": round(recall, 4), "precision": round(precision, 4)}
    expected_total = sum(e["establishments_expected"] for e in per_scenario.values())
    found_total = sum(e["establishments_found"] for e in per_scenario.values())
    out["overall"] = {
        "recall": round(found_total / expected_total, 4) if expected_total else None,
        "precision": round(len(true_positive) / len(run_incidents), 4) if run_incidents
        else None,
        "incidents": len(run_incidents),
        "false_positive_incidents": len(set(run_incidents) - true_positive),
        "campaigns": len(campaigns),
    }
    return out
