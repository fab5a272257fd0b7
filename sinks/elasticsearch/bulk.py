"""One bulk request and the triage of what Elasticsearch says about each document.

Per-document outcomes fall in three bins: written; retryable (429 and 5xx: the same document
will be sent again); rejected (mapping and parsing errors: sending it again would fail again,
so it goes to the dead-letter index with Elasticsearch's reason and the original bytes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import Elasticsearch


@dataclass(frozen=True)
class Doc:
    """A document ready for the bulk API; ``source`` is the exact JSON bytes from Kafka."""

    index: str
    id: str
    source: bytes
    ref: Any = None  # the caller's handle (the Kafka message), returned in the outcome


@dataclass
class BulkOutcome:
    written: list[Doc] = field(default_factory=list)
    retry: list[Doc] = field(default_factory=list)
    rejected: list[tuple[Doc, str]] = field(default_factory=list)


def _body(docs: list[Doc]) -> bytes:
    lines = []
    for doc in docs:
        lines.append(json.dumps({"index": {"_index": doc.index, "_id": doc.id}}).encode())
        lines.append(doc.source)
    return b"\n".join(lines) + b"\n"


def send_bulk(es: Elasticsearch, docs: list[Doc]) -> BulkOutcome:
    """Send ``docs`` in one request. Transport errors propagate: the caller backs off."""
    outcome = BulkOutcome()
    if not docs:
        return outcome
    response = es.bulk(operations=_body(docs), refresh=False)
    if not response.get("errors"):
        outcome.written = list(docs)
        return outcome
    for doc, item in zip(docs, response["items"], strict=True):
        result = item.get("index", {})
        status = int(result.get("status", 500))
        if status < 300:
            outcome.written.append(doc)
        elif status == 429 or status >= 500:
            outcome.retry.append(doc)
        else:
            error = result.get("error", {})
            reason = f"{error.get('type', status)}: {error.get('reason', '')}"
            caused = error.get("caused_by")
            if caused:
                reason += f" (caused by {caused.get('type')}: {caused.get('reason')})"
            outcome.rejected.append((doc, reason))
    return outcome
