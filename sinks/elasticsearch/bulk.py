"""One bulk request and the triage of what Elasticsearch says about each document.

Per-document outcomes fall in four bins: written; retryable (429 and 5xx: the same document
will be sent again); conflicts (409 on a conditional write: somebody wrote in between, the
caller re-reads and decides again); rejected (mapping and parsing errors: sending it again
would fail again, so it goes to the dead-letter index with Elasticsearch's reason and the
original bytes).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from elasticsearch import Elasticsearch

Op = Literal["index", "create"]


@dataclass(slots=True)
class Doc:
    """A document ready for the bulk API; ``source`` is the exact JSON bytes from Kafka.

    ``version`` is set for documents that carry their own state version (incidents): those
    are written through :mod:`sinks.elasticsearch.upsert`, never blindly overwritten.
    ``op``/``if_seq_no``/``if_primary_term`` make a write conditional on what was read.

    Not frozen, though never changed (:func:`dataclasses.replace` makes variants): one is
    built per record, and building a frozen dataclass cost three times as much
    (``bench/sink.py``).
    """

    index: str
    id: str
    source: bytes
    ref: Any = None  # the caller's handle (the Kafka message), returned in the outcome
    version: int | None = None
    op: Op = "index"
    if_seq_no: int | None = None
    if_primary_term: int | None = None


@dataclass
class BulkOutcome:
    written: list[Doc] = field(default_factory=list)
    retry: list[Doc] = field(default_factory=list)
    rejected: list[tuple[Doc, str]] = field(default_factory=list)
    conflicts: list[Doc] = field(default_factory=list)
    superseded: list[Doc] = field(default_factory=list)
    """Accounted for without a write: an older state than what Elasticsearch holds."""

    def merge(self, other: BulkOutcome) -> BulkOutcome:
        self.written += other.written
        self.retry += other.retry
        self.rejected += other.rejected
        self.conflicts += other.conflicts
        self.superseded += other.superseded
        return self


def _action(doc: Doc) -> dict[str, Any]:
    meta: dict[str, Any] = {"_index": doc.index, "_id": doc.id}
    if doc.if_seq_no is not None and doc.if_primary_term is not None:
        meta["if_seq_no"] = doc.if_seq_no
        meta["if_primary_term"] = doc.if_primary_term
    return {doc.op: meta}


#: Index names and ids that need no JSON escaping (every one the processor writes).
_PLAIN = re.compile(r"[A-Za-z0-9._-]+")


def _action_line(doc: Doc, prefixes: dict[str, bytes]) -> bytes:
    """The bulk action line of ``doc``. The common case (an unconditional ``index`` of a
    plain id) is spliced from a per-index prefix: ``json.dumps`` of the action took as long
    as everything else the sink does per document."""
    if doc.op != "index" or doc.if_seq_no is not None or not _PLAIN.fullmatch(doc.id):
        return json.dumps(_action(doc)).encode()
    prefix = prefixes.get(doc.index)
    if prefix is None:
        if not _PLAIN.fullmatch(doc.index):
            return json.dumps(_action(doc)).encode()
        prefix = prefixes[doc.index] = f'{{"index":{{"_index":"{doc.index}","_id":"'.encode()
    return prefix + doc.id.encode() + b'"}}'


def _body(docs: list[Doc]) -> bytes:
    lines = []
    prefixes: dict[str, bytes] = {}
    for doc in docs:
        lines.append(_action_line(doc, prefixes))
        lines.append(doc.source)
    return b"\n".join(lines) + b"\n"


def error_reason(error: dict[str, Any], status: int) -> str:
    """Elasticsearch's error object as one line an operator can read in the DLQ."""
    reason = f"{error.get('type', status)}: {error.get('reason', '')}"
    caused = error.get("caused_by")
    if caused:
        reason += f" (caused by {caused.get('type')}: {caused.get('reason')})"
    return reason


#: Bound of one bulk request's body. Elasticsearch refuses a request above its
#: ``http.max_content_length`` (100 MB by default) by closing the connection, which the client
#: sees as a transport error: retried forever, the sink would never move again. A batch of
#: dead letters carrying large original records reached 260 MB; it now leaves in pieces.
MAX_REQUEST_BYTES = 32 * 1024 * 1024


def pieces(docs: list[Doc], max_bytes: int = MAX_REQUEST_BYTES) -> list[list[Doc]]:
    """``docs`` in order, cut into runs whose sources total at most ``max_bytes`` (a document
    larger than that alone goes in a run of its own)."""
    runs: list[list[Doc]] = []
    size = 0
    for doc in docs:
        weight = len(doc.source) + 128  # the action line
        if not runs or (size + weight > max_bytes and runs[-1]):
            runs.append([])
            size = 0
        runs[-1].append(doc)
        size += weight
    return runs


def send_bulk(es: Elasticsearch, docs: list[Doc]) -> BulkOutcome:
    """Send ``docs`` in as few requests as :data:`MAX_REQUEST_BYTES` allows. Transport errors
    propagate: the caller backs off (and sends again what was already written: ids are
    deterministic, the writes idempotent)."""
    outcome = BulkOutcome()
    for run in pieces(docs):
        outcome.merge(_send_one(es, run))
    return outcome


#: The parts of a bulk response :func:`_send_one` reads.
RESPONSE_FIELDS = ["errors", "items.*.status", "items.*.error"]


def _send_one(es: Elasticsearch, docs: list[Doc]) -> BulkOutcome:
    """One bulk request and the triage of its items."""
    outcome = BulkOutcome()
    if not docs:
        return outcome
    # The client forwards a body already encoded as NDJSON bytes untouched (its
    # ``NdjsonSerializer``), which spares encoding every document twice; its annotation
    # admits only a list of dicts.
    # Only what the triage reads comes back: the full per-item results (index, id, version,
    # shards...) were about 200 bytes a document for the client to decode.
    response = es.bulk(operations=_body(docs), refresh=False,  # type: ignore[arg-type]
                       filter_path=RESPONSE_FIELDS)
    if not response.get("errors"):
        outcome.written = list(docs)
        return outcome
    for doc, item in zip(docs, response["items"], strict=True):
        result: dict[str, Any] = next(iter(item.values()), {})  # the one action's outcome
        status = int(result.get("status", 500))
        if status < 300:
            outcome.written.append(doc)
        elif status == 409:
            outcome.conflicts.append(doc)
        elif status == 429 or status >= 500:
            outcome.retry.append(doc)
        else:
            outcome.rejected.append((doc, error_reason(result.get("error", {}), status)))
    return outcome
