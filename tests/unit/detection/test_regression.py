"""Acceptance: with every shared SigmaHQ rule folder loaded at once, each of SigmaHQ's own
regression samples (real attack records, ``.json`` and ``.evtx``) triggers the rule its
``info.yml`` names. A sample that does not is listed in EXPECTED_FAILURES with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from processors.detection import Engine
from processors.detection.loader import default_rule_dirs, load_rules
from processors.detection.logsource import event_key
from processors.detection.view import EventView
from producers.windows import read_events

REGRESSION = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "sigma" / "regression"

#: (info.yml folder relative to REGRESSION, sample suffix) → why it cannot pass.
EXPECTED_FAILURES: dict[tuple[str, str], str] = {}


def _cases() -> list[Any]:
    cases = []
    for info in sorted(REGRESSION.rglob("info.yml")):
        folder = str(info.parent.relative_to(REGRESSION))
        for suffix in (".json", ".evtx"):
            reason = EXPECTED_FAILURES.get((folder, suffix))
            marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
            cases.append(pytest.param(info, suffix, id=f"{folder}{suffix}", marks=marks))
    return cases


CASES = _cases()
pytestmark = pytest.mark.skipif(not CASES, reason="shared SigmaHQ regression data not present")


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.from_rule_set(load_rules(default_rule_dirs()))


def _expected_rule_ids(info: Path) -> set[str]:
    metadata = yaml.safe_load(info.read_text(encoding="utf-8"))
    return {str(item["id"]) for item in metadata["rule_metadata"]}


@pytest.mark.parametrize(("info", "suffix"), CASES)
def test_sample_triggers_its_rule(engine: Engine, info: Path, suffix: str) -> None:
    samples = sorted(info.parent.glob(f"*{suffix}"))
    assert samples, f"no {suffix} sample next to {info}"
    expected = _expected_rule_ids(info)
    triggered: set[str] = set()
    for sample in samples:
        for _, event in read_events(sample):
            triggered.update(match.rule_id for match in engine.evaluate(event))
    assert expected <= triggered, f"{sorted(expected - triggered)} not triggered"


def test_pass_rate_floor() -> None:
    """At least 95 % of the samples must pass: expected failures stay the exception."""
    assert len(EXPECTED_FAILURES) <= 0.05 * len(CASES)


def test_whole_rule_set_loads(engine: Engine) -> None:
    """Every Windows rule either runs or is skipped for a stated, known reason."""
    report = engine.report()
    assert report.rules_loaded > 2500
    assert set(report.skipped_by_reason) <= {"unsupported log source", "unsupported detection"}
    assert all(skipped.path and skipped.reason for skipped in report.skipped)


def test_indexes_never_change_the_result(engine: Engine) -> None:
    """Routing and the literal prefilter are only shortcuts: on every sample, the engine finds
    exactly what evaluating every rule of the event's bucket finds — with far fewer checks."""
    for sample in sorted(REGRESSION.rglob("*.json")):
        for _, event in read_events(sample):
            key = event_key(event)
            assert key is not None
            view = EventView(event, engine.fieldmap)
            brute = {r.info.id for r in engine._bucket(key).rules if r.matches(view)}
            assert {m.rule_id for m in engine.evaluate(event)} == brute
            assert len(engine.candidates(event)) < 150


def _value_for(pattern: object) -> str | None:
    """An event value a string pattern matches (``None`` for shapes left to the samples)."""
    kind, payload = pattern.kind, pattern.payload  # type: ignore[attr-defined]
    return {
        "equals": lambda: payload,
        "prefix": lambda: payload + "zz",
        "suffix": lambda: "zz" + payload,
        "contains": lambda: "zz" + payload + "zz",
    }.get(kind, lambda: None)()


def test_indexes_never_change_the_result_on_crafted_events(engine: Engine) -> None:
    """Samples rewritten so that many other rules' selections hold (values taken from the
    rules themselves, some upper-cased): the indexes still find exactly the brute-force set."""
    import copy
    import random

    from processors.detection.modifiers import StringMatcher

    chooser = random.Random(7)
    compared = triggered = 0
    for sample in sorted(REGRESSION.rglob("*.json")):
        for _, event in read_events(sample):
            key = event_key(event)
            assert key is not None
            bucket = engine._bucket(key)
            for rule in chooser.sample(list(bucket.rules), min(10, len(bucket.rules))):
                crafted = copy.deepcopy(event)
                for leaf in rule.root.positive_leaves():
                    if isinstance(leaf.test, StringMatcher) and leaf.field not in (None, "EventID"):
                        value = _value_for(chooser.choice(leaf.test.patterns))
                        if value is not None:
                            upper = chooser.random() < 0.3
                            crafted["winlog"]["event_data"][leaf.field] = (
                                value.upper() if upper else value
                            )
                view = EventView(crafted, engine.fieldmap)
                brute = {r.info.id for r in bucket.rules if r.matches(view)}
                assert {m.rule_id for m in engine.evaluate(crafted)} == brute
                compared += 1
                triggered += bool(brute)
    assert triggered > compared // 2  # the crafted events do exercise the rules
