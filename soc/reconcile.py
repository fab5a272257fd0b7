"""Counting what Elasticsearch holds for a run, to reconcile against what was produced.

Tests and the demo do not trust the pipeline's own counters: they ask Elasticsearch how many
of the run's event ids it holds (and how many times), and which dead letters came from the
run's Kafka offsets.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from elasticsearch import Elasticsearch

from schemas import indices
from schemas.topics import EVENTS_RAW

_CHUNK = 10_000


def event_id_counts(es: Elasticsearch, ids: Iterable[str]) -> Counter[str]:
    """How many documents under ``vigie-events`` carry each of ``ids`` (1 = exactly once).

    ``ids`` are national event ids (``schemas.identity.national_event_id``: what
    ``SimulationReport.valid_ids`` and ``SimRecord.document_id`` hold), unique across
    establishments, so a count never mixes in another establishment's event."""
    es.indices.refresh(index=indices.EVENTS.alias, ignore_unavailable=True,
                       allow_no_indices=True)
    wanted = list(ids)
    seen: Counter[str] = Counter()
    if not es.indices.exists(index=indices.EVENTS.alias):
        return seen
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start:start + _CHUNK]
        # A terms aggregation counts every copy, wherever (whichever monthly index) it is.
        result = es.search(index=indices.EVENTS.alias, size=0,
                           query={"terms": {"event.id": chunk}},
                           aggs={"ids": {"terms": {"field": "event.id", "size": len(chunk)}}})
        for bucket in result["aggregations"]["ids"]["buckets"]:
            seen[bucket["key"]] += bucket["doc_count"]
    return seen


def dead_letters_for_offsets(
    es: Elasticsearch, ranges: Mapping[int, tuple[int, int]], topic: str = EVENTS_RAW.name
) -> list[dict[str, Any]]:
    """Dead letters of records read from ``topic`` at offsets [lo, hi) per partition."""
    es.indices.refresh(index=indices.DLQ.alias, ignore_unavailable=True, allow_no_indices=True)
    should = [
        {"bool": {"filter": [{"term": {"origin.partition": p}},
                             {"range": {"origin.offset": {"gte": lo, "lt": hi}}}]}}
        for p, (lo, hi) in ranges.items() if hi > lo
    ]
    if not should:
        return []
    query = {"bool": {"filter": [{"term": {"origin.topic": topic}}],
                      "should": should, "minimum_should_match": 1}}
    return [hit["_source"] for hit in _scan(es, indices.DLQ.alias, query,
                                            ["id", "reason", "detail", "origin",
                                             "original_size"])]


def _scan(es: Elasticsearch, index: str, query: dict[str, Any],
          fields: list[str]) -> Iterable[dict[str, Any]]:
    """All hits, paged by (partition, offset, index in the envelope): unique per topic, so
    no page skips a hit."""
    if not es.indices.exists(index=index):
        return
    after: list[Any] | None = None
    while True:
        body: dict[str, Any] = {"query": query, "size": 5000, "_source": fields,
                                "sort": [{"origin.partition": "asc"}, {"origin.offset": "asc"},
                                         # events of one envelope share its offset
                                         {"origin.index": {"order": "asc", "missing": "_first",
                                                           "unmapped_type": "long"}}]}
        if after is not None:
            body["search_after"] = after
        hits = es.search(index=index, **body)["hits"]["hits"]
        if not hits:
            return
        yield from hits
        after = hits[-1]["sort"]
