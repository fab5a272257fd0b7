"""Bulk triage and the upsert's decisions, against a tiny in-memory stand-in for two APIs.

The real behaviour is proven on the real Elasticsearch (tests/integration); this stand-in
implements just ``mget`` and ``bulk`` with ``_seq_no`` semantics so that the decision logic
(keep the highest version, re-read on 409, retry 429/5xx, reject 4xx) is checked in
milliseconds, including interleavings that are hard to provoke on a server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sinks.elasticsearch.bulk import MAX_REQUEST_BYTES, Doc, Lines, send_bulk, send_lines
from sinks.elasticsearch.upsert import write, write_latest


class Store:
    """``mget`` + ``bulk`` (index/create with if_seq_no) over a dict, plus injectable faults."""

    def __init__(self) -> None:
        self.docs: dict[str, tuple[int, dict[str, Any]]] = {}
        self.seq = 0
        self.before_bulk: Callable[[], None] | None = None
        self.status_for: dict[str, int] = {}

    def put(self, id_: str, source: dict[str, Any]) -> None:
        self.seq += 1
        self.docs[id_] = (self.seq, source)

    def mget(self, docs: list[dict[str, Any]], realtime: bool) -> dict[str, Any]:
        out = []
        for d in docs:
            held = self.docs.get(d["_id"])
            out.append({"_id": d["_id"], "found": held is not None} | (
                {"_seq_no": held[0], "_primary_term": 1, "_source": held[1]} if held else {}))
        return {"docs": out}

    def bulk(self, operations: bytes, refresh: bool,
             filter_path: list[str] | None = None) -> dict[str, Any]:
        if self.before_bulk:
            hook, self.before_bulk = self.before_bulk, None
            hook()
        lines = operations.decode().splitlines()
        items = []
        for action_line, source_line in zip(lines[::2], lines[1::2], strict=True):
            ((op, meta),) = json.loads(action_line).items()
            status = self.status_for.get(meta["_id"], 0) or self._apply(op, meta,
                                                                        json.loads(source_line))
            items.append({op: {"_id": meta["_id"], "status": status} | (
                {"error": {"type": "mapper_parsing_exception", "reason": "bad"}}
                if status == 400 else {})})
        return {"errors": any(next(iter(i.values()))["status"] >= 300 for i in items),
                "items": items}

    def _apply(self, op: str, meta: dict[str, Any], source: dict[str, Any]) -> int:
        held = self.docs.get(meta["_id"])
        if op == "create" and held:
            return 409
        if "if_seq_no" in meta and (not held or held[0] != meta["if_seq_no"]):
            return 409
        self.put(meta["_id"], source)
        return 201


def _doc(id_: str, version: int) -> Doc:
    return Doc("vigie-incidents-000001", id_, json.dumps({"id": id_, "version": version})
               .encode(), version=version)


def test_bulk_triage_separates_written_retry_rejected_and_conflicts() -> None:
    store = Store()
    store.status_for = {"b": 429, "c": 503, "d": 400}
    docs = [Doc("i", k, b"{}") for k in "abcd"]
    outcome = send_bulk(store, docs)  # type: ignore[arg-type]
    assert [d.id for d in outcome.written] == ["a"]
    assert [d.id for d in outcome.retry] == ["b", "c"]
    assert [(d.id, r.split(":")[0]) for d, r in outcome.rejected] == [
        ("d", "mapper_parsing_exception")]


def test_highest_version_wins_within_a_batch_and_against_what_is_held() -> None:
    store = Store()
    outcome = write_latest(store, [_doc("x", 2), _doc("x", 4), _doc("x", 3)])  # type: ignore[arg-type]
    assert [d.version for d in outcome.written] == [4]
    assert sorted(d.version or 0 for d in outcome.superseded) == [2, 3]
    outcome = write_latest(store, [_doc("x", 1)])  # type: ignore[arg-type]
    assert outcome.superseded and not outcome.written
    assert store.docs["x"][1]["version"] == 4


def test_a_concurrent_write_is_reread_and_decided_again() -> None:
    store = Store()
    store.put("x", {"id": "x", "version": 1})
    # Between our read and our write, another sink writes version 9: our 409 leads to a
    # re-read, and our version 5 is then superseded instead of overwriting 9.
    store.before_bulk = lambda: store.put("x", {"id": "x", "version": 9})
    outcome = write_latest(store, [_doc("x", 5)])  # type: ignore[arg-type]
    assert outcome.superseded and not outcome.written and not outcome.retry
    assert store.docs["x"][1]["version"] == 9


def test_mixed_batches_route_versioned_docs_to_the_upsert() -> None:
    store = Store()
    plain = Doc("vigie-events-2026.01", "e1", b'{"event": {"id": "e1"}}')
    outcome = write(store, [plain, _doc("x", 1)])  # type: ignore[arg-type]
    # The plain document is counted, the versioned one listed (written by the upsert).
    assert (outcome.indexed, [d.id for d in outcome.written]) == (1, ["x"])
    assert set(store.docs) == {"e1", "x"}


def test_lines_triage_gives_back_refused_documents_as_docs_with_their_record() -> None:
    """The sink's plain path builds no ``Doc`` per record: the few that Elasticsearch does
    not take come back as ``Doc`` carrying the record (for the retry, the dead letter)."""
    store = Store()
    store.status_for = {"b": 429, "c": 503, "d": 400, "e": 409}
    lines = Lines()
    for n, key in enumerate("abcde"):
        lines.add(Doc("vigie-events-2026.01", key, b'{"n": %d}' % n, ref=f"record-{key}"))
    outcome = write(store, [], lines)  # type: ignore[arg-type]
    assert outcome.indexed == 1 and set(store.docs) == {"a"}
    assert [(d.index, d.id, d.source, d.ref) for d in outcome.retry] == [
        ("vigie-events-2026.01", k, b'{"n": %d}' % n, f"record-{k}")
        for n, k in ((1, "b"), (2, "c"), (4, "e"))]
    assert [(d.id, d.ref, r.split(":")[0]) for d, r in outcome.rejected] == [
        ("d", "record-d", "mapper_parsing_exception")]


def test_lines_leave_in_requests_elasticsearch_accepts() -> None:
    """The 32 MB cut holds on the sink's plain path too: every document, once, in order."""
    requests: list[bytes] = []

    class Recorder(Store):
        def bulk(self, operations: bytes, refresh: bool,
                 filter_path: list[str] | None = None) -> dict[str, Any]:
            requests.append(operations)
            return super().bulk(operations, refresh, filter_path)

    lines = Lines()
    for n in range(70):
        lines.add(Doc("vigie-dlq-000001", f"id{n}", b'"' + b"x" * 1_000_000 + b'"'))
    outcome = send_lines(Recorder(), lines)  # type: ignore[arg-type]
    assert outcome.indexed == 70 and len(requests) == 3
    assert all(len(body) <= MAX_REQUEST_BYTES for body in requests)
    ids = [json.loads(line)["index"]["_id"] for body in requests
           for line in body.splitlines()[::2]]
    assert ids == [f"id{n}" for n in range(70)]
