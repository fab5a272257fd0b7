"""Integration fixtures: the real local stack (deploy/local), started once per session."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from deploy.local.pipeline import PROCESSOR_READY, Service
from producers.simulator.fleet import register_simulated_agents
from producers.simulator.run import AGENT_SEED, registry_for
from runtime.elasticsearch import make_client
from runtime.settings import Settings, load_settings
from runtime.topics import ensure_topics, start_group_at_end
from schemas import indices
from schemas.organization import Organization, Region
from sinks.elasticsearch.templates import install_templates
from tests.integration.fresh import delete_leftovers, fresh_env, processor_group, sink_group


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Settings:
    from deploy.local import stack as local

    local.up()
    ensure_topics(settings.kafka)
    return settings


@pytest.fixture(scope="session")
def es(stack: Settings) -> Elasticsearch:
    client = make_client(stack)
    install_templates(client)
    return client


@pytest.fixture(scope="session")
def national_registry(stack: Settings) -> list[Organization]:
    """The establishments, their simulated agents registered on the simulated registry (which
    only a processor in demo mode trusts)."""
    orgs = registry_for(stack.registry)
    register_simulated_agents(stack.kafka, orgs, AGENT_SEED)
    return orgs


@pytest.fixture()
def services(stack: Settings, national_registry: list[Organization], tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Service]]:
    """Processor (in demo mode: the tests sign with simulated agents) and sink as real
    processes, under consumer groups of their own that start at the current end of every
    topic; stopped (SIGTERM) after the test.

    Fresh groups (and so fresh Faust tables): the processor sees only what the test produces,
    not what other runs left in the shared topics since the shared group last ran (a
    leftover open incident would absorb the test's detections). The groups are set in the
    environment, so a Service the test restarts joins them too; ``Settings()`` in the test
    reads them.
    """
    name = f"it-{int(time.time() * 1000)}"
    for variable, value in fresh_env(name).items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("APP_DATADIR", str(tmp_path / "faust-data"))
    for group in (processor_group(name), sink_group(name)):
        start_group_at_end(stack.kafka, group)
    started = {
        "processor": Service("processor", ["process", "--demo"], tmp_path).start(),
        "sink": Service("sink", ["sink"], tmp_path).start(),
    }
    # Runs start on a ready processor (README, "Known issues": a Faust start-up race).
    assert started["processor"].wait_for_log(PROCESSOR_READY), started["processor"].tail(40)
    yield started
    for service in started.values():
        service.stop()
    delete_leftovers(stack.kafka, name)


@pytest.fixture()
def two_regions(es: Elasticsearch) -> Iterator[str]:
    """One event of Bretagne and one of Corse, in a month long past (the stack is shared);
    yields the tag that marks them."""
    when = datetime(2001, 3, 1, tzinfo=UTC)
    index = indices.EVENTS.index_for(when)
    marker = uuid.uuid4().hex
    for region, org_id in ((Region.BRETAGNE, "350000001"), (Region.CORSE, "2A0000001")):
        es.index(index=index, id=f"{marker}-{region.value}", refresh=True, document={
            "@timestamp": when.isoformat(), "event": {"id": f"{marker}-{region.value}"},
            "organization": {"id": org_id, "name": "test", "region": region.value},
            "tags": [marker]})
    yield marker
    for region in (Region.BRETAGNE, Region.CORSE):  # no delete-by-query in this distribution
        es.delete(index=index, id=f"{marker}-{region.value}", refresh=True)
