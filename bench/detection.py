"""Events per second through the detection engine: the full SigmaHQ set vs a single rule.

The ratio is the figure to watch (absolute rates drift on shared machines): it says what
indexing buys — an event of the full set should cost a small multiple of a one-rule engine,
not thousands of rule checks. Events are SigmaHQ's regression samples (real attacks, all
categories), cycled. Writes ``bench/results/detection.json``.

    .venv/bin/python bench/detection.py [--events 30000]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from processors.detection import Engine, load_rules  # noqa: E402
from processors.detection.loader import default_rule_dirs  # noqa: E402
from producers.windows import read_events  # noqa: E402

REGRESSION = ROOT / ".." / "shared" / "data" / "sigma" / "regression"
SINGLE_RULE = "d5866ddf-ce8f-4aea-b28e-d96485a20d3d"  # file_event, system file names


def sample_events() -> list[dict[str, Any]]:
    return [event for path in sorted(REGRESSION.rglob("*.json")) for _, event in read_events(path)]


def rate(engine: Engine, events: list[dict[str, Any]], total: int) -> tuple[float, int]:
    matches = 0
    started = time.perf_counter()
    for index in range(total):
        matches += len(engine.evaluate(events[index % len(events)]))
    return total / (time.perf_counter() - started), matches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    started = time.perf_counter()
    rule_set = load_rules(default_rule_dirs())
    full = Engine.from_rule_set(rule_set)
    load_seconds = time.perf_counter() - started
    single = Engine([r for r in rule_set.rules if str(r.rule.id) == SINGLE_RULE])
    events = sample_events()
    for engine in (full, single):  # warm the lazily built buckets
        rate(engine, events, len(events))

    candidates = [len(full.candidates(event)) for event in events]
    full_rates, single_rates, full_matches = [], [], 0
    for _ in range(args.repeat):
        value, full_matches = rate(full, events, args.events)
        full_rates.append(value)
        single_rates.append(rate(single, events, args.events)[0])
    result = {
        "python": platform.python_version(),
        "events": args.events,
        "distinct_events": len(events),
        "rules_loaded": len(full.rules),
        "load_and_compile_seconds": round(load_seconds, 2),
        "full_rule_set_events_per_second": round(statistics.median(full_rates)),
        "single_rule_events_per_second": round(statistics.median(single_rates)),
        "full_over_single_cost_ratio": round(
            statistics.median(single_rates) / statistics.median(full_rates), 2
        ),
        "rules_evaluated_per_event_mean": round(statistics.mean(candidates), 1),
        "rules_evaluated_per_event_max": max(candidates),
        "matches_per_event_mean": round(full_matches / args.events, 2),
    }
    out = ROOT / "bench" / "results" / "detection.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
