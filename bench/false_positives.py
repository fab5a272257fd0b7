"""False positives of the whole Sigma rule set on the simulator's benign-only stream.

    .venv/bin/python -m bench.false_positives [--events 50000] [--seed 1]

Prints the detections per rule (none is the goal) and writes bench/results/false_positives.json.
The benign stream is synthetic: it shows that Vigie's own traffic does not trip the rules, not
what a real hospital's noise would trip.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from processors.detection.engine import Engine
from producers.simulator.registry import generate_registry
from producers.simulator.simulation import Simulation

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    engine = Engine.from_paths()
    sim = Simulation(generate_registry(), seed=args.seed, total=args.events,
                     start=datetime.now(UTC) - timedelta(hours=1), span=timedelta(hours=1),
                     scenarios=[], malformed=0)
    per_rule: Counter[str] = Counter()
    windows_events = 0
    began = time.perf_counter()
    for record in sim:
        doc = json.loads(record.value)
        if "winlog" in doc:
            windows_events += 1
        for match in engine.evaluate(doc):
            per_rule[f"{match.rule.id} {match.rule.title} ({match.rule.level})"] += 1
    result = {
        "events": args.events,
        "windows_events": windows_events,
        "rules_loaded": engine.report().rules_loaded,
        "detections": sum(per_rule.values()),
        "per_rule": dict(per_rule.most_common()),
        "seconds": round(time.perf_counter() - began, 1),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "false_positives.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
