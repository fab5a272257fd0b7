"""Fixtures for the agent's unit tests: an identity, a key, a finisher, a model of Kafka."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import producers.agent.ship as ship
import runtime.kafka
from producers.agent.pipeline import Finisher
from producers.agent.sources.base import Context
from producers.signing import Signer
from schemas.organization import Organization
from tests.unit.agent.kafka_model import FakeConsumer, FakeKafka, FakeProducer

ORG = Organization(id="750712184", name="CHU Test", type="university_hospital",
                   region="ile-de-france")


@pytest.fixture()
def ctx() -> Context:
    return Context(ORG.id, "chu-test-01")


@pytest.fixture(scope="session")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture()
def finisher(key: Ed25519PrivateKey) -> Finisher:
    return Finisher(ORG, Signer("chu-test-01", key), None)


@pytest.fixture()
def kafka(monkeypatch: pytest.MonkeyPatch) -> FakeKafka:
    model = FakeKafka()
    monkeypatch.setattr(FakeProducer, "kafka", model, raising=False)
    monkeypatch.setattr(FakeConsumer, "kafka", model, raising=False)
    monkeypatch.setattr(runtime.kafka, "Producer", FakeProducer)
    monkeypatch.setattr(runtime.kafka, "Consumer", FakeConsumer)
    monkeypatch.setattr(ship, "RETRY_S", 0.0)
    return model
