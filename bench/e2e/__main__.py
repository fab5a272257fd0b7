"""``make bench`` (``python -m bench.e2e [--quick]``): the end-to-end benchmark.

One run on the local stack measures

1. the raw ceilings with the simulator's own signed records: confluent-kafka produce and
   consume, Elasticsearch bulk (``helpers.bulk``, best of a few batch sizes);
2. the pipeline's sustained throughput (simulator → processor → sink → searchable) and the
   production → searchable latency (p50, p99) at 50 % and 90 % of that throughput;
3. each component's peak RSS and the cores it used;

over a one-factor-at-a-time scaling grid around the baseline (1 worker, 3,036
establishments, all rules): 2 workers; 100 and 30,000 establishments; 1 and 100 rules.
Each figure is repeated (``--repeats``, default 3) and reported as median and spread. The
baseline processor and sink are profiled with py-spy. Results: ``bench/results/e2e.json`` and
``e2e.md`` (``e2e-quick.*`` with ``--quick``).

The events travel in envelopes as agents send them, ~30 events each: what one
establishment's agent sends in one second at the national peak (``--envelope-events``,
:mod:`bench.e2e.workload`). The headline figures of issue 14 (pipeline events/s, Elasticsearch
bulk ceiling, their ratio, processor and sink CPU per event, latency at half load, run
length) are at the top level of the JSON, each with its aim (:func:`bench.e2e.report.headline`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.e2e import ceilings, report
from bench.e2e.pipeline import (
    Config,
    Pipeline,
    RssSampler,
    drain,
    hot_spots,
    paced,
    profile,
    stack_pids,
)
from bench.e2e.workload import (
    ENVELOPE_EVENTS,
    classified_documents,
    event_count,
    records,
    registry,
    rule_subset,
)
from processors.detection.loader import default_rule_dirs
from runtime.elasticsearch import make_client
from runtime.settings import REPO_ROOT, load_settings
from sinks.elasticsearch.templates import install_templates

RESULTS = REPO_ROOT / "bench" / "results"

GRID = [
    Config("baseline"),
    Config("2 workers", workers=2),
    Config("100 establishments", establishments=100),
    Config("30,000 establishments", establishments=30_000),
    Config("1 rule", rules="1"),
    Config("100 rules", rules="100"),
]


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def spread(samples: list[float]) -> dict[str, Any] | None:
    """Median, min, max and relative spread ((max - min) / median) of ``samples``."""
    if not samples:
        return None
    med = statistics.median(samples)
    return {"median": round(med, 1), "min": round(min(samples), 1),
            "max": round(max(samples), 1),
            "spread_pct": round(100 * (max(samples) - min(samples)) / med, 1) if med else None,
            "n": len(samples), "samples": [round(x, 1) for x in samples]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small runs, baseline and one rule-set point only (~4 min)")
    parser.add_argument("--events", type=int, help="events per throughput repetition")
    parser.add_argument("--envelope-events", type=int, default=ENVELOPE_EVENTS,
                        help="events per envelope at full load (default %(default)s: one "
                             "establishment's second at the national peak, 90,000 events/s "
                             "over 3,036 establishments); 1 sends one record per event")
    parser.add_argument("--repeats", type=int, help="repetitions of each figure")
    parser.add_argument("--latency-seconds", type=float, help="length of each paced run")
    parser.add_argument("--only", help="comma-separated grid points by name (default: all)")
    args = parser.parse_args()
    # Long enough that the fixed production → searchable latency (~2 s) is under 10 % of
    # a repetition at the rates envelopes allow; the report says the fraction measured.
    events = args.events or (10_000 if args.quick else 60_000)
    size = args.envelope_events
    repeats = args.repeats or (2 if args.quick else 3)
    latency_s = args.latency_seconds or (8.0 if args.quick else 15.0)
    grid = GRID[:1] + GRID[4:5] if args.quick else GRID
    if args.only:
        wanted = {name.strip() for name in args.only.split(",")}
        grid = [c for c in GRID if c.name in wanted]

    from deploy.local import stack

    began = time.monotonic()
    # Only used, never started nor provisioned from here (a shared stack must not be
    # re-provisioned under its other users): `make bench` runs `stack up` first.
    down = [st.name for st in stack.status() if not st.answering]
    if down:
        sys.exit(f"the local stack does not answer ({', '.join(down)}): run `vigie stack up`")
    settings = load_settings()
    es = make_client(settings, request_timeout=120)
    install_templates(es)
    home = settings.home / "bench"
    tag = time.strftime("%Y%m%d%H%M%S")
    seed = int(time.time()) % 10**6
    result: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": args.quick,
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "events_per_repetition": events, "repeats": repeats,
        "envelope_events": size,
    }

    say(f"[{_t(began)}] ceilings with {events} simulator events in signed envelopes of "
        f"{size}…")
    base_registry = registry(home, 3036, settings.kafka)
    batch = records(base_registry, seed, events, size)
    docs = classified_documents(base_registry, batch)
    raw = ceilings.measure(settings.kafka, es, batch, docs, repeats, tag, say)
    result["ceilings"] = {
        "kafka_produce": spread(raw["kafka_produce_eps"]),
        "kafka_consume": spread(raw["kafka_consume_eps"]),
        "es_bulk": spread(raw["es_bulk_eps"]),
        "es_bulk_batch_size": raw["es_bulk_batch"],
        "es_bulk_trials": {str(k): round(v) for k, v in raw["es_bulk_trial_eps"].items()},
        "record_bytes_mean": round(statistics.mean(len(r.value) for r in batch)),
        "events_per_record_mean": round(event_count(batch) / len(batch), 2),
        "kafka_produce_records": spread(raw["kafka_produce_rps"]),
        "kafka_consume_records": spread(raw["kafka_consume_rps"]),
        "document_bytes_mean": round(statistics.mean(len(d[2]) for d in docs)),
    }
    del batch, docs

    all_dirs = default_rule_dirs()
    result["grid"] = []
    baseline_eps: float | None = None
    for index, config in enumerate(grid):
        say(f"[{_t(began)}] pipeline: {config.name}")
        reg = registry(home, config.establishments, settings.kafka)
        rule_dir = None if config.rules == "all" else rule_subset(home, int(config.rules),
                                                                   all_dirs)
        pipe = Pipeline(config, reg, rule_dir, settings.kafka,
                        home / "runs" / f"{tag}-{index}", f"{tag}-{index}")
        point: dict[str, Any] = {"name": config.name, "workers": config.workers,
                                 "establishments": config.establishments,
                                 "rules": config.rules}
        rss = RssSampler()
        for name, pid in stack_pids().items():
            rss.watch(name, pid)
        rss.watch("bench (producer, polling)", os.getpid())
        rss.start()
        try:
            warm = records(reg, seed + 1000 * index, min(5000, events), size)
            started = time.monotonic()
            pipe.start()
            for service in pipe.services:
                rss.watch(service.name, service.proc.pid if service.proc else None)
            drain(pipe, es, warm)  # start-up: group join, Sigma compile, first batches
            point["startup_to_first_searchable_s"] = round(time.monotonic() - started, 1)
            point["rules_loaded"] = pipe.rules_loaded()
            reps = []
            for k in range(repeats):
                # Made one at a time: a repetition's events are not held during another.
                rep = drain(pipe, es, records(reg, seed + 1000 * index + k + 1, events, size))
                reps.append(rep)
                say(f"  rep {k + 1}: {rep['eps']:.0f} ev/s ({rep['seconds']} s, "
                    f"cores {rep['cores_used']}, foreign {rep['foreign_records']})")
            point["repetitions"] = reps
            point["throughput_eps"] = spread([r["eps"] for r in reps])
            point["missing_at_end"] = sum(r["missing_at_end"] for r in reps)
            if config.name == "baseline":
                baseline_eps = point["throughput_eps"]["median"]
                point["profile"] = _profiled_drain(pipe, es, reg, seed, events, size)
                point["latency"] = _latencies(pipe, es, reg, seed, baseline_eps, latency_s,
                                              repeats, size)
            point["changelog_records"] = pipe.changelog_records()
        finally:
            pipe.stop()
            point["peak_rss_mib"] = rss.stop()
        result["grid"].append(point)
        _write(result, args.quick)  # partial results survive an interruption

    ceiling_min = min(result["ceilings"][k]["median"]
                      for k in ("kafka_produce", "kafka_consume", "es_bulk"))
    result["ceiling_min_eps"] = ceiling_min
    if baseline_eps is not None:
        result["pipeline_eps"] = baseline_eps
        result["ratio_pipeline_over_min_ceiling"] = round(baseline_eps / ceiling_min, 3)
    result.update(report.headline(result))
    result["bench_seconds"] = round(time.monotonic() - began)
    paths = _write(result, args.quick)
    print(report.markdown(result))
    say(f"[{_t(began)}] written {', '.join(str(p) for p in paths)}")


def _profiled_drain(pipe: Pipeline, es: Any, reg: Any, seed: int, events: int,
                    size: int) -> dict[str, Any]:
    """One more (untimed) repetition with py-spy attached to the processor and the sink."""
    batch = records(reg, seed + 500, events, size)
    out: dict[str, Any] = {}
    spies = {}
    for service in pipe.services[:1] + pipe.services[-1:]:
        assert service.proc is not None
        path = pipe.work / f"{service.name}.pyspy.txt"
        spy = profile(service.proc.pid, 600, path)
        if spy is not None:
            spies[service.name] = (spy, path)
    time.sleep(1)
    drain(pipe, es, batch)
    for name, (spy, path) in spies.items():
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT (not SIGTERM)
        spy.wait(30)
        if path.exists():
            out[name] = hot_spots(path)
    if not spies:
        out["note"] = "py-spy unavailable: install it (pip install py-spy) and run as root"
    return out


def _latencies(pipe: Pipeline, es: Any, reg: Any, seed: int, eps: float, seconds: float,
               repeats: int, size: int) -> dict[str, Any]:
    """Paced runs at 50 % and 90 % of the throughput. An agent's envelope leaves after one
    second, so at a fraction of the peak it holds that fraction of ``size`` events: the
    runs use envelopes of that size, not the peak's."""
    out: dict[str, Any] = {}
    for load in (50, 90):
        rate = eps * load / 100
        total = max(500, int(rate * seconds))
        load_size = max(1, round(size * load / 100))
        runs = []
        for k in range(repeats):
            batch = records(reg, seed + 700 + 10 * load + k, total, load_size)
            run = paced(pipe, es, batch, rate, stamp_every=max(1, len(batch) // 600))
            runs.append(run)
            say(f"  latency at {load} % ({rate:.0f} ev/s, envelopes of {load_size}): "
                f"p50 {run['p50_s']} s, p99 {run['p99_s']} s from the event "
                f"(from sending: {run['from_send_p50_s']} s, {run['from_send_p99_s']} s; "
                f"{run['probes_seen']}/{run['probes']} probes)")
        out[f"{load}pct"] = {
            "rate_eps": round(rate), "envelope_events": load_size, "runs": runs,
            "p50_s": spread([r["p50_s"] for r in runs if r["p50_s"] is not None]),
            "p99_s": spread([r["p99_s"] for r in runs if r["p99_s"] is not None]),
            "from_send_p50_s": spread([r["from_send_p50_s"] for r in runs
                                       if r["from_send_p50_s"] is not None]),
            "from_send_p99_s": spread([r["from_send_p99_s"] for r in runs
                                       if r["from_send_p99_s"] is not None]),
        }
    return out


def _write(result: dict[str, Any], quick: bool) -> list[Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "e2e-quick" if quick else "e2e"
    json_path = RESULTS / f"{stem}.json"
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    md_path = RESULTS / f"{stem}.md"
    md_path.write_text(report.markdown(result))
    return [json_path, md_path]


def _t(began: float) -> str:
    seconds = int(time.monotonic() - began)
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


if __name__ == "__main__":
    main()
