"""Incidents: keep the newest state in Elasticsearch whatever order Kafka delivers it in.

The compacted ``incidents`` topic holds the latest state of each incident, but a consumer
reading it again (a restart before commit, a new consumer group, compaction lag) can see an
older version after a newer one, and two sink instances may race on the same incident. So an
incident is never blindly overwritten: read what Elasticsearch holds (``_seq_no``,
``_primary_term`` and the document's own ``version``), keep the higher version, and write
conditionally (``if_seq_no``/``if_primary_term``, or ``create`` when absent). A 409 means
somebody wrote in between: read again and decide again. No scripts are used: the integ-test
distribution has no Painless, and a client-side merge runs unchanged on a full cluster.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from elasticsearch import Elasticsearch

from sinks.elasticsearch.bulk import BulkOutcome, Doc, Lines, send_bulk, send_lines

log = logging.getLogger(__name__)

#: Read-compare-write rounds inside one call before conflicting docs go back to the caller
#: (which backs off): under heavy contention this bounds the time spent in a tight loop.
MAX_ROUNDS = 8


@dataclass(frozen=True)
class Held:
    """What Elasticsearch holds for one document: its concurrency token and state version."""

    seq_no: int
    primary_term: int
    version: int


def write(es: Elasticsearch, docs: list[Doc], lines: Lines | None = None) -> BulkOutcome:
    """Write a mixed batch: versioned docs by upsert, the others (and ``lines``, written
    unconditionally already encoded) with one plain bulk. Plain writes are counted in the
    outcome's ``indexed``, not listed in ``written``."""
    plain = Lines()
    versioned: list[Doc] = []
    for doc in docs:
        if doc.version is None:
            plain.add(doc)
        else:
            versioned.append(doc)
    outcome = send_lines(es, lines) if lines else BulkOutcome()
    if plain:
        outcome.merge(send_lines(es, plain))
    return outcome.merge(write_latest(es, versioned))


def write_latest(es: Elasticsearch, docs: list[Doc]) -> BulkOutcome:
    """Upsert versioned docs keeping the highest ``version`` per ``_id``.

    Every input doc ends in exactly one bin of the outcome: ``written``, ``superseded``
    (an older state than one already held or in the same batch), ``retry`` or ``rejected``.
    """
    outcome = BulkOutcome()
    best: dict[tuple[str, str], Doc] = {}
    for doc in docs:  # in offset order: on equal versions the later record wins
        key = (doc.index, doc.id)
        kept = best.get(key)
        if kept is not None and _v(doc) < _v(kept):
            outcome.superseded.append(doc)
            continue
        if kept is not None:
            outcome.superseded.append(kept)
        best[key] = doc
    pending = list(best.values())
    for _ in range(MAX_ROUNDS):
        if not pending:
            break
        held, unreadable = _read(es, pending)
        outcome.retry += unreadable
        skip = {(d.index, d.id) for d in unreadable}
        to_write: list[Doc] = []
        for doc in pending:
            key = (doc.index, doc.id)
            if key in skip:
                continue
            current = held.get(key)
            if current is None:
                to_write.append(replace(doc, op="create", if_seq_no=None, if_primary_term=None))
            elif _v(doc) < current.version:
                outcome.superseded.append(doc)
            else:
                # Equal versions are written again: a replay after a mapping change reindexes.
                to_write.append(replace(doc, op="index", if_seq_no=current.seq_no,
                                        if_primary_term=current.primary_term))
        result = send_bulk(es, to_write)
        outcome.written += result.written
        outcome.retry += result.retry
        outcome.rejected += result.rejected
        pending = result.conflicts
        if pending:
            log.debug("%d incident writes conflicted; reading them again", len(pending))
    outcome.retry += pending
    return outcome


def _v(doc: Doc) -> int:
    return doc.version or 0


def _read(es: Elasticsearch, docs: list[Doc]) -> tuple[dict[tuple[str, str], Held], list[Doc]]:
    """Current ``Held`` state per (index, id); docs whose read failed are returned apart."""
    response = es.mget(docs=[{"_index": d.index, "_id": d.id, "_source": ["version"]}
                             for d in docs], realtime=True)
    held: dict[tuple[str, str], Held] = {}
    unreadable: list[Doc] = []
    for doc, item in zip(docs, response["docs"], strict=True):
        error = item.get("error")
        if error:
            if error.get("type") == "index_not_found_exception":
                continue  # first incident ever: the create below makes the index
            log.warning("cannot read incident %s: %s", doc.id, error.get("reason"))
            unreadable.append(doc)
            continue
        if item.get("found"):
            version = (item.get("_source") or {}).get("version")
            held[(doc.index, doc.id)] = Held(
                seq_no=int(item["_seq_no"]), primary_term=int(item["_primary_term"]),
                version=version if isinstance(version, int) else 0)
    return held, unreadable
