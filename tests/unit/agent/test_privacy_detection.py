"""Detection survives the privacy policy: every SigmaHQ regression sample, read by the agent
and pseudonymised as it would be shipped, triggers the same rules as in clear — except the
losses listed here, each with the reason the policy accepts it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from processors.detection import Engine
from processors.detection.loader import default_rule_dirs, load_rules
from producers.agent.pipeline import Finisher
from producers.agent.privacy import Pseudonymiser
from producers.agent.sources.base import Context
from producers.agent.sources.evtx import WindowsFileSource
from producers.signing import Signer

from .conftest import ORG

REGRESSION = Path(__file__).resolve().parents[4] / "shared" / "data" / "sigma" / "regression"

#: Rule id → why pseudonymisation stops it firing on its sample.
ACCEPTED_LOSSES = {
    # certutil downloading from an address: the rule tests the address's first digit
    # (``://1``..``://9``); an internal address is a desk, pseudonymised into fd00::/8 in
    # text as in fields. Downloads from public addresses still fire.
    "13e6fe51-d478-4c7e-b0f2-6da9b400a829": "internal IPv4 in a command line",
}

SAMPLES = sorted(REGRESSION.rglob("info.yml"))
pytestmark = pytest.mark.skipif(not SAMPLES, reason="shared SigmaHQ regression data not present")


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.from_rule_set(load_rules(default_rule_dirs()))


def test_pseudonymised_events_trigger_what_clear_ones_do(engine: Engine, key: Ed25519PrivateKey
                                                         ) -> None:
    shipped = Finisher(ORG, Signer("chu-test-01", key), Pseudonymiser(b"k" * 32))
    clear = Finisher(ORG, Signer("chu-test-01", key), None)
    lost: dict[str, set[str]] = {}
    expected_fired = 0
    for info in SAMPLES:
        expected = {str(item["id"]) for item in
                    yaml.safe_load(info.read_text(encoding="utf-8"))["rule_metadata"]}
        for sample in sorted(info.parent.glob("*.json")):
            docs = WindowsFileSource("s", [str(sample)], Context(ORG.id, "a")).poll(10_000)
            before: set[str] = set()
            after: set[str] = set()
            for doc in docs:
                copy = json.loads(json.dumps(doc))
                before.update(m.rule_id for m in engine.evaluate(
                    json.loads(clear.value(copy)[1])))
                after.update(m.rule_id for m in engine.evaluate(
                    json.loads(shipped.value(doc)[1])))
            expected_fired += len(expected & after)
            for rule in before - after:
                lost.setdefault(rule, set()).add(info.parent.name)
    assert expected_fired >= 0.95 * len(SAMPLES)
    assert set(lost) <= set(ACCEPTED_LOSSES), {r: sorted(s) for r, s in lost.items()
                                                if r not in ACCEPTED_LOSSES}
