"""Incident queries for the operator CLI (``vigie incidents list|show|search``).

Filters become Elasticsearch ``filter`` clauses (cached, not scored); only the free-text part
of a search is scored. A regional operator can be pointed at ``vigie-incidents-<region>``
(the region-filtered alias) instead of the national alias, and the same queries apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from elasticsearch import Elasticsearch, NotFoundError

from runtime.errors import UsageError
from schemas import indices
from schemas.taxonomy import Severity


@dataclass(frozen=True)
class IncidentFilter:
    """What an operator narrows the incidents to; ``None`` means no constraint."""

    region: str | None = None
    establishment: str | None = None
    """A FINESS id, or words of the establishment's name."""
    min_severity: Severity | None = None
    status: str | None = None
    category: str | None = None
    declarable: bool | None = None
    since: datetime | None = None
    """Incidents with activity (``last_seen``) at or after this instant."""
    scope: str | None = None


def severities_at_least(minimum: Severity) -> list[str]:
    return [s.value for s in Severity if s.rank >= minimum.rank]


def filter_clauses(f: IncidentFilter) -> list[dict[str, Any]]:
    clauses: list[dict[str, Any]] = []
    if f.region:
        clauses.append({"term": {"organizations.region": f.region}})
    if f.establishment:
        # A FINESS id is exact; anything else is matched against the name.
        clauses.append({"bool": {"should": [
            {"term": {"organizations.id": f.establishment}},
            {"match": {"organizations.name.text": {"query": f.establishment,
                                                   "operator": "and"}}},
        ], "minimum_should_match": 1}})
    if f.min_severity:
        clauses.append({"terms": {"severity": severities_at_least(f.min_severity)}})
    if f.status:
        clauses.append({"term": {"status": f.status}})
    if f.category:
        clauses.append({"term": {"category": f.category}})
    if f.declarable is not None:
        clauses.append({"term": {"declarable": f.declarable}})
    if f.since:
        clauses.append({"range": {"last_seen": {"gte": f.since.isoformat()}}})
    if f.scope:
        clauses.append({"term": {"scope": f.scope}})
    return clauses


def build_query(f: IncidentFilter, text: str | None = None) -> dict[str, Any]:
    must: list[dict[str, Any]] = []
    if text:
        # simple_query_string never fails on operator input ("T1566 AND (" is just words).
        must.append({"simple_query_string": {
            "query": text,
            "fields": ["title^3", "declarable_reasons", "organizations.name.text",
                       "indicator", "techniques", "id", "organizations.id"],
            "default_operator": "and", "lenient": True}})
    return {"bool": {"filter": filter_clauses(f), "must": must or [{"match_all": {}}]}}


def find_incidents(es: Elasticsearch, f: IncidentFilter, text: str | None = None, *,
                   limit: int = 50, index: str = indices.INCIDENTS.alias
                   ) -> tuple[int, list[dict[str, Any]]]:
    """(total matching, the ``limit`` most recently active incidents)."""
    sort: list[Any] = [{"last_seen": "desc"}, {"id": "asc"}]
    if text:
        sort = ["_score", *sort]
    response = es.search(index=index, query=build_query(f, text), size=limit, sort=sort,
                         track_total_hits=True, ignore_unavailable=True,
                         allow_no_indices=True)
    hits = response["hits"]
    return int(hits["total"]["value"]), [h["_source"] for h in hits["hits"]]


class AmbiguousId(UsageError, LookupError):
    """An id prefix that matches more than one incident."""


def get_incident(es: Elasticsearch, incident_id: str,
                 index: str = indices.INCIDENTS.alias) -> dict[str, Any] | None:
    """One incident by id, or by the unambiguous prefix the table shows (12 characters).

    Searched rather than fetched with GET: the alias may one day span several indices.
    """
    incident_id = incident_id.strip().lower()
    query = ({"term": {"id": incident_id}} if len(incident_id) >= 32
             else {"prefix": {"id": incident_id}})
    try:
        response = es.search(index=index, query=query, size=2)
    except NotFoundError:
        return None
    hits = response["hits"]["hits"]
    if len(hits) > 1:
        raise AmbiguousId(f"{incident_id!r} matches several incidents; give more characters")
    return hits[0]["_source"] if hits else None


def linked_incidents(es: Elasticsearch, incident: dict[str, Any],
                     index: str = indices.INCIDENTS.alias) -> list[dict[str, Any]]:
    """The establishment incidents a national campaign links, for ``show``."""
    ids = incident.get("linked_incident_ids") or []
    if not ids:
        return []
    response = es.search(index=index, query={"terms": {"id": ids}}, size=len(ids),
                         sort=[{"first_seen": "asc"}])
    return [h["_source"] for h in response["hits"]["hits"]]
