"""Integration fixtures: the real local stack (deploy/local), started once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from deploy.processes import PROCESSOR_READY, Service
from deploy.topics import ensure_topics
from producers.simulator.run import registry_for
from schemas.organization import Organization
from sinks.elasticsearch.client import install_templates, make_client
from vigie.settings import Settings, load_settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Settings:
    from deploy.local import stack as local

    local.up()
    ensure_topics(settings.kafka_bootstrap)
    return settings


@pytest.fixture(scope="session")
def es(stack: Settings) -> Elasticsearch:
    client = make_client(stack)
    install_templates(client)
    return client


@pytest.fixture(scope="session")
def national_registry(stack: Settings) -> list[Organization]:
    return registry_for(stack.registry)


@pytest.fixture()
def services(tmp_path: Path) -> Iterator[dict[str, Service]]:
    """Processor and sink as real processes; stopped (SIGTERM) after the test."""
    started = {
        "processor": Service("processor", ["process"], tmp_path).start(),
        "sink": Service("sink", ["sink"], tmp_path).start(),
    }
    # Known issue (README): records produced while a Faust worker is still starting were once
    # seen skipped (2 of 50,000). Until that is understood, runs start on a ready processor.
    assert started["processor"].wait_for_log(PROCESSOR_READY), started["processor"].tail(40)
    yield started
    for service in started.values():
        service.stop()
