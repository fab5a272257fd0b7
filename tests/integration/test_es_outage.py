"""Elasticsearch stopped for 30 s in the middle of a 50,000-event run, then restarted.

The sink must pause (no offset committed for what Elasticsearch did not acknowledge), back
off with jitter, resume when Elasticsearch answers again, and at the end every event of the
run is in ``vigie-events`` exactly once and every malformed record in ``vigie-dlq``.

This stops the shared local Elasticsearch: it is a drill, run on purpose
(``VIGIE_STACK_DRILL=1``, set by ``make test``), and Elasticsearch is always restarted,
whatever happens.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition
from elasticsearch import Elasticsearch

from deploy.local import stack as local_stack
from deploy.local.pipeline import Service
from runtime.kafka import KafkaConnection
from runtime.settings import Settings
from runtime.topics import end_offsets
from schemas import indices
from schemas.organization import Organization
from schemas.topics import EVENTS_CLASSIFIED
from tests.drills.support import stop_server
from tests.integration.support import Run, produce_run, wait_for_run

pytestmark = [
    pytest.mark.integration, pytest.mark.drill, pytest.mark.timeout(1800),
    pytest.mark.skipif(os.environ.get("VIGIE_STACK_DRILL") != "1",
                       reason="stops the shared Elasticsearch for 30 s (other sessions use it); "
                              "opt in with VIGIE_STACK_DRILL=1, as `make test` does"),
]

EVENTS = 50_000
MALFORMED = 100
OUTAGE_S = 30


def committed(kafka: KafkaConnection, group: str, topic: str) -> dict[int, int]:
    """The group's committed offsets (read without joining the group: no rebalance)."""
    consumer = kafka.consumer(group)
    try:
        wanted = [TopicPartition(topic, p) for p in end_offsets(kafka, topic)]
        return {tp.partition: tp.offset for tp in consumer.committed(wanted, timeout=15)}
    finally:
        consumer.close()


def _events_total(es: Elasticsearch) -> int:
    es.indices.refresh(index=indices.EVENTS.alias)
    return int(es.count(index=indices.EVENTS.alias)["count"])


def test_elasticsearch_down_30s_mid_run_loses_and_duplicates_nothing(
        stack: Settings, es: Elasticsearch, national_registry: list[Organization],
        services: dict[str, Service], tmp_path: Path) -> None:
    baseline = _events_total(es)
    produced: dict[str, Run] = {}
    producer = threading.Thread(target=lambda: produced.setdefault("run", produce_run(
        stack, national_registry, tmp_path, seed=int(time.time()), events=EVENTS,
        malformed=MALFORMED)))
    producer.start()
    deadline = time.monotonic() + 600
    while _events_total(es) - baseline < 5_000:
        assert time.monotonic() < deadline, f"no progress:\n{services['sink'].tail(40)}"
        assert services["sink"].alive, services["sink"].tail(40)
        time.sleep(1)
    indexed_before = _events_total(es) - baseline
    try:
        stop_server("elasticsearch")
        down_at = time.monotonic()
        time.sleep(5)  # a batch acknowledged just before the stop may still commit
        # The services fixture's own sink group (set in the environment).
        topic, group = EVENTS_CLASSIFIED.name, Settings().sink_group
        frozen = committed(stack.kafka, group, topic)
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        assert services["sink"].alive, f"the sink died with Elasticsearch:\n" \
                                       f"{services['sink'].tail(40)}"
        # Nothing acknowledged, nothing committed: the sink paused instead of skipping.
        assert committed(stack.kafka, group, topic) == frozen
    finally:
        local_stack.up(timeout=300)  # always: the stack is shared
    outage = time.monotonic() - down_at
    producer.join(900)
    run = produced["run"]
    assert indexed_before < run.report.valid, "Elasticsearch must stop in the middle of the run"

    counts, letters = wait_for_run(es, run, services, timeout=1200)

    valid = set(run.report.valid_ids)
    assert len(valid) == run.report.valid > 45_000
    missing = valid - set(counts)
    assert not missing, f"{len(missing)} events lost"
    duplicated = {i: n for i, n in counts.items() if n != 1}
    assert not duplicated, f"{len(duplicated)} events indexed more than once"
    expected = {(t["partition"], t["offset"], t["index"]): t["expected_reason"]
                for t in run.truth if t["kind"] == "malformed"}
    found = {(d["origin"]["partition"], d["origin"]["offset"],
              d["origin"].get("index")): d["reason"] for d in letters}
    assert found == expected
    log = services["sink"].log_path.read_text(errors="replace")
    assert "Elasticsearch unavailable" in log, "the sink should have backed off"
    print(f"outage {outage:.0f} s; {indexed_before} events indexed before the stop; "
          f"{len(counts)} events exactly once, {len(letters)} dead letters")
