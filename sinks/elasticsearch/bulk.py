"""One bulk request and the triage of what Elasticsearch says about each document.

Per-document outcomes fall in four bins: written; retryable (429 and 5xx: the same document
will be sent again); conflicts (409 on a conditional write: somebody wrote in between, the
caller re-reads and decides again); rejected (mapping and parsing errors: sending it again
would fail again, so it goes to the dead-letter index with Elasticsearch's reason and the
original bytes).

Two ways in: :class:`Doc` lists (:func:`send_bulk`: conditional writes, dead letters, what
must come back as documents) and :class:`Lines`, unconditional writes already encoded as the
request's lines, which the sink builds for most records without a ``Doc`` each
(:func:`send_lines`: the few items Elasticsearch refuses come back as ``Doc``).
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
    indexed: int = 0
    """Unconditional writes from :class:`Lines` acknowledged: counted, not listed (listing
    them would mean building the ``Doc`` that :class:`Lines` exists to avoid)."""

    def merge(self, other: BulkOutcome) -> BulkOutcome:
        self.written += other.written
        self.retry += other.retry
        self.rejected += other.rejected
        self.conflicts += other.conflicts
        self.superseded += other.superseded
        self.indexed += other.indexed
        return self


def _action(doc: Doc) -> dict[str, Any]:
    meta: dict[str, Any] = {"_index": doc.index, "_id": doc.id}
    if doc.if_seq_no is not None and doc.if_primary_term is not None:
        meta["if_seq_no"] = doc.if_seq_no
        meta["if_primary_term"] = doc.if_primary_term
    return {doc.op: meta}


#: Index names and ids that need no JSON escaping (every one the processor writes).
_PLAIN = re.compile(r"[A-Za-z0-9._-]+")
#: ``{"index":{"_index":"<index>","_id":"`` per index: a handful (one index a month).
_PREFIXES: dict[str, bytes] = {}
_CLOSE = b'"}}'


def _prefix(index: str) -> bytes:
    """The start of an unconditional ``index`` action line for ``index``, up to its id."""
    prefix = _PREFIXES.get(index)
    if prefix is None:
        if len(_PREFIXES) > 4096:  # bounded whatever the indices a caller names
            _PREFIXES.clear()
        head = json.dumps({"index": {"_index": index, "_id": ""}},
                          separators=(",", ":")).encode()
        prefix = _PREFIXES[index] = head[:-len(_CLOSE)]
    return prefix


def _action_line(doc: Doc) -> bytes:
    """The bulk action line of ``doc``. The common case (an unconditional ``index`` of a
    plain id) is spliced from a per-index prefix: ``json.dumps`` of the action took as long
    as everything else the sink does per document."""
    if doc.op != "index" or doc.if_seq_no is not None or not _PLAIN.fullmatch(doc.id):
        return json.dumps(_action(doc)).encode()
    return _prefix(doc.index) + doc.id.encode() + _CLOSE


def _ndjson(lines: list[bytes]) -> bytes:
    """``lines`` (a list of the caller's making: it gets an empty last line) as one NDJSON
    body, copied once (``join`` then ``+ b"\\n"`` copied a batch's 2 MB twice)."""
    lines.append(b"")
    return b"\n".join(lines)


def _body(docs: list[Doc]) -> bytes:
    lines = []
    for doc in docs:
        lines.append(_action_line(doc))
        lines.append(doc.source)
    return _ndjson(lines)


class Lines:
    """Unconditional ``index`` writes, already as the bulk request's lines: for each
    document its action line then its source, and beside them the caller's handle (``ref``).

    The sink puts most records here straight from their routing headers: no :class:`Doc`
    per record, no action encoded per record (a per-index prefix and the id), and the body
    is one ``join``. A document Elasticsearch refuses is rebuilt as a ``Doc``
    (:meth:`doc`) for the retry or the dead letter."""

    __slots__ = ("parts", "refs")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.refs: list[Any] = []

    def __len__(self) -> int:
        return len(self.refs)

    def add_routed(self, index: str, doc_id: bytes, source: bytes, ref: Any) -> None:
        """A document whose ``doc_id`` needs no JSON escaping: only ids that
        :func:`schemas.routing.plain` returned (checked, 32 hex digits). Anything else goes
        through :meth:`add`."""
        prefix = _PREFIXES.get(index)
        if prefix is None:
            prefix = _prefix(index)
        self.parts += (prefix + doc_id + _CLOSE, source)
        self.refs.append(ref)

    def add(self, doc: Doc) -> None:
        """An unconditional ``Doc`` (its id escaped as needed); its ``ref`` is kept."""
        if doc.op != "index" or doc.if_seq_no is not None or doc.version is not None:
            raise ValueError(f"not an unconditional write: {doc.id}")
        self.parts += (_action_line(doc), doc.source)
        self.refs.append(doc.ref)

    def doc(self, n: int) -> Doc:
        """The ``n``-th document as a ``Doc`` (index and id read back from its action line)."""
        ((_, meta),) = json.loads(self.parts[2 * n]).items()
        return Doc(meta["_index"], meta["_id"], self.parts[2 * n + 1], ref=self.refs[n])

    def runs(self, max_bytes: int) -> list[tuple[int, int]]:
        """``(start, stop)`` document ranges whose request bodies stay within ``max_bytes``
        (a document larger than that alone in a run of its own), in order."""
        if sum(map(len, self.parts)) + len(self.parts) <= max_bytes:
            return [(0, len(self.refs))] if self.refs else []
        runs: list[tuple[int, int]] = []
        start, size = 0, 0
        for n in range(len(self.refs)):
            weight = len(self.parts[2 * n]) + len(self.parts[2 * n + 1]) + 2
            if size + weight > max_bytes and n > start:
                runs.append((start, n))
                start, size = n, 0
            size += weight
        runs.append((start, len(self.refs)))
        return runs

    def body(self, start: int, stop: int) -> bytes:
        return _ndjson(self.parts[2 * start:2 * stop])


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


#: The parts of a bulk response the triage reads.
RESPONSE_FIELDS = ["errors", "items.*.status", "items.*.error"]


def _request(es: Elasticsearch, body: bytes) -> Any:
    """One bulk request of an NDJSON body.

    The client forwards a body already encoded as NDJSON bytes (its annotation admits only a
    list of dicts); the clients of :func:`runtime.elasticsearch.make_client` do so without
    copying it. Only what the triage reads comes back: the full per-item results (index, id,
    version, shards...) were about 200 bytes a document for the client to decode."""
    return es.bulk(operations=body, refresh=False,  # type: ignore[arg-type]
                   filter_path=RESPONSE_FIELDS)


def _status(item: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The status of one item of a bulk response, and the one action's outcome."""
    result: dict[str, Any] = next(iter(item.values()), {})
    return int(result.get("status", 500)), result


def send_lines(es: Elasticsearch, lines: Lines) -> BulkOutcome:
    """Send ``lines`` in as few requests as :data:`MAX_REQUEST_BYTES` allows. Written
    documents are counted (``indexed``); the ones to send again (429, 5xx, and a 409, which
    an unconditional write only gets if something else went wrong) and the rejected come back
    as ``Doc``. Transport errors propagate, as with :func:`send_bulk`."""
    outcome = BulkOutcome()
    for start, stop in lines.runs(MAX_REQUEST_BYTES):
        response = _request(es, lines.body(start, stop))
        if not response.get("errors"):
            outcome.indexed += stop - start
            continue
        items = response["items"]
        if len(items) != stop - start:
            raise ValueError(f"bulk response has {len(items)} items for {stop - start} "
                             f"documents")
        for n, item in enumerate(items, start):
            status, result = _status(item)
            if status < 300:
                outcome.indexed += 1
            elif status == 409 or status == 429 or status >= 500:
                outcome.retry.append(lines.doc(n))
            else:
                outcome.rejected.append(
                    (lines.doc(n), error_reason(result.get("error", {}), status)))
    return outcome


def _send_one(es: Elasticsearch, docs: list[Doc]) -> BulkOutcome:
    """One bulk request and the triage of its items."""
    outcome = BulkOutcome()
    if not docs:
        return outcome
    response = _request(es, _body(docs))
    if not response.get("errors"):
        outcome.written = list(docs)
        return outcome
    for doc, item in zip(docs, response["items"], strict=True):
        status, result = _status(item)
        if status < 300:
            outcome.written.append(doc)
        elif status == 409:
            outcome.conflicts.append(doc)
        elif status == 429 or status >= 500:
            outcome.retry.append(doc)
        else:
            outcome.rejected.append((doc, error_reason(result.get("error", {}), status)))
    return outcome
