"""Shared fixtures: the synthetic registry and a small simulation, built once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from producers.simulator.registry import generate_registry
from producers.simulator.simulation import Simulation
from schemas.organization import Organization


@pytest.fixture(scope="session")
def registry() -> list[Organization]:
    return generate_registry(300, seed=3)


@pytest.fixture(scope="session")
def simulation(registry: list[Organization]) -> Simulation:
    return Simulation(registry, seed=11, total=3000, start=datetime.now(UTC) - timedelta(hours=1),
                      span=timedelta(minutes=50), scenarios=["brute_force", "malware", "phishing"],
                      malformed=160)
