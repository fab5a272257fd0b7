"""Events per second through the detection engine: the full SigmaHQ set vs a single rule.

The ratio is the figure to watch (absolute rates drift on shared machines): it says what
indexing buys — an event of the full set should cost a small multiple of a one-rule engine,
not thousands of rule checks. Two event sets, each cycled through both engines:

- ``regression``: SigmaHQ's regression samples (real attacks, all categories, ~1.5 matches
  per event: the worst case, every event is meant to trigger something);
- ``simulated``: the Windows events of the simulator (benign traffic plus its attack
  scenarios), closer to what a hospital streams.

The one-rule engine routes most events to no rule at all (its rule is a ``file_event`` one)
and answers them at the cost of routing alone; ``single_rule_evaluated_share`` says how
many it evaluates. That is the honest floor: the full set must not be compared with a
one-rule engine that does needless work on every event. A second one-rule engine holds
"Mimikatz Use" (keywords over the whole event, routed to every Windows event): it evaluates
one rule per event, and ``full_over_every_event_rule_cost_ratio`` compares the full set with
the cost of checking one rule.

The machine is shared, so single and full runs are *interleaved* (full, single, full,
single...) and each repeat gives its own ratio: the median ratio and its spread are
reported, never a ratio of rates measured minutes apart. Writes
``bench/results/detection.json``.

    .venv/bin/python bench/detection.py [--events 20000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from processors.detection import Engine, load_rules  # noqa: E402
from processors.detection.loader import default_rule_dirs  # noqa: E402
from producers.simulator.registry import generate_registry  # noqa: E402
from producers.simulator.scenarios import SCENARIOS  # noqa: E402
from producers.simulator.simulation import Simulation  # noqa: E402
from producers.windows import read_events  # noqa: E402

REGRESSION = ROOT / ".." / "shared" / "data" / "sigma" / "regression"
SINGLE_RULE = "d5866ddf-ce8f-4aea-b28e-d96485a20d3d"  # file_event, system file names
# "Mimikatz Use": keywords over the whole event, routed to every Windows event, so a one-rule
# engine holding it evaluates exactly one rule per event: the cost of *checking* one rule.
EVERY_EVENT_RULE = "06d71506-7beb-4f22-8888-e2e5e2ca7fd8"


def regression_events() -> list[dict[str, Any]]:
    return [event for path in sorted(REGRESSION.rglob("*.json")) for _, event in read_events(path)]


def simulated_events(count: int, seed: int = 1) -> list[dict[str, Any]]:
    """Windows events of a simulated hour with every attack scenario, as the processor sees
    them (the wire JSON decoded)."""
    sim = Simulation(generate_registry(), seed=seed, total=count,
                     start=datetime.now(UTC) - timedelta(hours=1), span=timedelta(hours=1),
                     scenarios=sorted(SCENARIOS), malformed=0)
    docs = (json.loads(record.value) for record in sim)
    return [doc for doc in docs if isinstance(doc, dict) and "winlog" in doc]


def rate(engine: Engine, events: list[dict[str, Any]], total: int) -> tuple[float, int]:
    """Events per CPU-second of this process (less sensitive to neighbours than wall time)."""
    matches = 0
    started = time.process_time()
    for index in range(total):
        matches += len(engine.evaluate(events[index % len(events)]))
    return total / (time.process_time() - started), matches


def compare(full: Engine, single: Engine, every: Engine, cold: Engine,
            events: list[dict[str, Any]], total: int, repeat: int) -> dict[str, Any]:
    for engine in (full, single, every, cold):  # warm caches (field resolvers, allocator)
        rate(engine, events, len(events))
    candidates = [len(full.candidates(event)) for event in events]
    single_evaluated = [len(single.candidates(event)) for event in events]
    every_evaluated = [len(every.candidates(event)) for event in events]
    full_rates, single_rates, ratios, full_matches = [], [], [], 0
    every_ratios, cold_ratios = [], []
    for _ in range(repeat):
        full_rate, full_matches = rate(full, events, total)
        single_rate = rate(single, events, total)[0]
        every_rate = rate(every, events, total)[0]
        cold_rate = rate(cold, events, total)[0]
        full_rates.append(full_rate)
        single_rates.append(single_rate)
        ratios.append(single_rate / full_rate)
        every_ratios.append(every_rate / full_rate)
        cold_ratios.append(every_rate / cold_rate)
    return {
        "distinct_events": len(events),
        "events_per_run": total,
        "full_rule_set_events_per_second": round(statistics.median(full_rates)),
        "single_rule_events_per_second": round(statistics.median(single_rates)),
        "full_over_single_cost_ratio": round(statistics.median(ratios), 2),
        "ratio_min": round(min(ratios), 2),
        "ratio_max": round(max(ratios), 2),
        "ratios": [round(r, 2) for r in ratios],
        "rules_evaluated_per_event_mean": round(statistics.mean(candidates), 1),
        "rules_evaluated_per_event_max": max(candidates),
        "matches_per_event_mean": round(full_matches / total, 2),
        "single_rule_evaluated_share": round(statistics.mean(single_evaluated), 2),
        # Against a one-rule engine that evaluates its rule on every event ("Mimikatz Use").
        "full_over_every_event_rule_cost_ratio": round(statistics.median(every_ratios), 2),
        "every_event_rule_ratios": [round(r, 2) for r in every_ratios],
        "every_event_rule_evaluated_share": round(statistics.mean(every_evaluated), 2),
        # The same with nothing remembered between events (memo_entries=0): what an event
        # costs when none of its field values was seen before. The event sets are cycled, so
        # the figure above has every value remembered: a stream lies between the two.
        "cold_full_over_every_event_rule_cost_ratio": round(statistics.median(cold_ratios), 2),
        "cold_every_event_rule_ratios": [round(r, 2) for r in cold_ratios],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per timed run")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--simulated", type=int, default=5_000,
                        help="records simulated (the Windows ones are kept)")
    args = parser.parse_args()

    started = time.perf_counter()
    rule_set = load_rules(default_rule_dirs())
    full = Engine.from_rule_set(rule_set)
    load_seconds = time.perf_counter() - started
    single = Engine([r for r in rule_set.rules if str(r.rule.id) == SINGLE_RULE])
    every = Engine([r for r in rule_set.rules if str(r.rule.id) == EVERY_EVENT_RULE])
    cold = Engine.from_rule_set(rule_set, memo_entries=0)
    sets = {"regression": regression_events(), "simulated": simulated_events(args.simulated)}
    by_set = {name: compare(full, single, every, cold, events, args.events, args.repeat)
              for name, events in sets.items()}
    result = {
        "python": platform.python_version(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "rules_loaded": len(full.rules),
        "load_and_compile_seconds": round(load_seconds, 2),
        "clock": "process CPU time; single and full interleaved, one ratio per repeat",
        # The headline is the worse of the two event sets.
        "full_over_single_cost_ratio": max(s["full_over_single_cost_ratio"]
                                           for s in by_set.values()),
        "full_over_every_event_rule_cost_ratio": max(
            s["full_over_every_event_rule_cost_ratio"] for s in by_set.values()),
        "cold_full_over_every_event_rule_cost_ratio": max(
            s["cold_full_over_every_event_rule_cost_ratio"] for s in by_set.values()),
        "target_ratio": 3.0,
        **by_set,
    }
    out = ROOT / "bench" / "results" / "detection.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    for name, figures in by_set.items():
        print(f"{name:>10}: full {figures['full_rule_set_events_per_second']} ev/s, single "
              f"{figures['single_rule_events_per_second']} ev/s, ratio "
              f"{figures['full_over_single_cost_ratio']} "
              f"[{figures['ratio_min']}–{figures['ratio_max']}] (target ≤ 3); against one rule "
              f"checked on every event: {figures['full_over_every_event_rule_cost_ratio']} "
              f"(nothing remembered: {figures['cold_full_over_every_event_rule_cost_ratio']})")


if __name__ == "__main__":
    main()
