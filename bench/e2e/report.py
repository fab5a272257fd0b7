"""The Markdown page of a benchmark result: the tables an architect reads, and what limits."""

from __future__ import annotations

import statistics
from typing import Any

from processors.app import BATCH_WITHIN_S as _PROCESSOR_WAIT_S
from runtime.settings import Settings

#: The pipeline's own waits, as configured by default (what a latency figure includes).
_SINK_WAIT_S: float = Settings.model_fields["sink_batch_max_wait_s"].default

#: Issue 14's aims for the headline figures: (comparison, bound).
AIMS: dict[str, tuple[str, float]] = {
    "processor_cpu_us_per_event": ("<=", 40.0),
    "ratio_pipeline_to_ceiling": (">=", 0.5),
    "sink_cpu_us_per_event": ("<=", 10.0),
    "latency_half_load_p99_s": ("<=", 2.0),
}
#: The fixed latency must weigh less than this in a throughput repetition.
FIXED_LATENCY_SHARE_AIM = 0.10


def _baseline(result: dict[str, Any]) -> dict[str, Any] | None:
    return next((p for p in result.get("grid", []) if p["name"] == "baseline"), None)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _cpu_us_per_event(reps: list[dict[str, Any]], prefix: str) -> float | None:
    """Median over repetitions of the CPU seconds of the processes named ``prefix*``
    divided by the events of the repetition, in µs."""
    per_rep = [sum(v for k, v in r["cpu_seconds"].items() if k.startswith(prefix))
               / r["events"] * 1e6 for r in reps
               if r.get("cpu_seconds") and r.get("events")
               and any(k.startswith(prefix) for k in r["cpu_seconds"])]
    found = _median(per_rep)
    return round(found, 1) if found is not None else None


def headline(result: dict[str, Any]) -> dict[str, Any]:
    """The top-level figures of issue 14, from the baseline point: pipeline events/s, the
    Elasticsearch bulk ceiling and their ratio, the processor's and the sink's CPU per event
    (CPU seconds of their processes over each repetition / its events; all rules, signatures
    and correlation on), latency at half load, the run length and the share of it the fixed
    latency takes; and whether each aim is met."""
    base = _baseline(result)
    out: dict[str, Any] = {}
    es_ceiling = (result.get("ceilings", {}).get("es_bulk") or {}).get("median")
    out["ceiling_es_bulk_docs_per_s"] = es_ceiling
    if not base or not base.get("repetitions"):
        return out
    reps = base["repetitions"]
    eps = _median([r["eps"] for r in reps])
    assert eps is not None
    out["pipeline_events_per_s"] = round(eps, 1)
    out["pipeline_events_per_record"] = round(
        sum(r["events"] for r in reps) / max(1, sum(r.get("records", r["events"])
                                                   for r in reps)), 2)
    out["ratio_pipeline_to_ceiling"] = round(eps / es_ceiling, 3) if es_ceiling else None
    out["processor_cpu_us_per_event"] = _cpu_us_per_event(reps, "processor")
    out["sink_cpu_us_per_event"] = _cpu_us_per_event(reps, "sink")
    half = (base.get("latency") or {}).get("50pct") or {}
    runs = half.get("runs", [])
    for key, field in (("latency_half_load_p50_s", "p50_s"),
                       ("latency_half_load_p99_s", "p99_s"),
                       ("latency_half_load_from_send_p50_s", "from_send_p50_s"),
                       ("latency_half_load_from_send_p99_s", "from_send_p99_s")):
        value = _median([r[field] for r in runs if r.get(field) is not None])
        out[key] = round(value, 3) if value is not None else None
    run_s = _median([r["seconds"] for r in reps])
    out["run_seconds"] = run_s
    fixed = out["latency_half_load_from_send_p50_s"]
    out["fixed_latency_s"] = fixed
    out["fixed_latency_share_of_run"] = (round(fixed / run_s, 3)
                                         if fixed is not None and run_s else None)
    aims: dict[str, Any] = {}
    for name, (op, bound) in AIMS.items():
        value = out.get(name)
        met = None if value is None else (value <= bound if op == "<=" else value >= bound)
        aims[name] = {"aim": f"{op} {bound:g}", "value": value, "met": met}
    share = out["fixed_latency_share_of_run"]
    aims["fixed_latency_share_of_run"] = {
        "aim": f"< {FIXED_LATENCY_SHARE_AIM:g}", "value": share,
        "met": None if share is None else share < FIXED_LATENCY_SHARE_AIM}
    out["aims"] = aims
    return out


def _fig(stat: dict[str, Any] | None, unit: str = "") -> str:
    if not stat:
        return "–"
    return (f"{stat['median']:,.1f}{unit} ({stat['min']:,.1f}–{stat['max']:,.1f}, "
            f"±{stat['spread_pct']} %, n={stat['n']})")


def markdown(result: dict[str, Any]) -> str:
    ceil = result.get("ceilings", {})
    lines = [
        f"# End-to-end benchmark ({'quick' if result.get('quick') else 'full'} run, "
        f"{result.get('when', '?')})",
        "",
        f"Machine: {result['machine']['cores']} cores shared by Kafka, Elasticsearch, the "
        f"pipeline and the bench (and other users of the stack); Python "
        f"{result['machine']['python']}. {result['events_per_repetition']:,} events per "
        f"repetition, {result['repeats']} repetitions; figures are median (min–max, "
        f"relative spread, n).",
        "",
        *_envelope_lines(result),
        *_headline_lines(result),
        "## Pipeline against the raw ceilings",
        "",
        "| figure | events/s |",
        "| --- | --- |",
        f"| Kafka produce (confluent-kafka, idempotent, acks=all, lz4; "
        f"{_median_of(ceil.get('kafka_produce_records'))} records/s) | "
        f"{_fig(ceil.get('kafka_produce'))} |",
        f"| Kafka consume (confluent-kafka, fresh group; "
        f"{_median_of(ceil.get('kafka_consume_records'))} records/s) | "
        f"{_fig(ceil.get('kafka_consume'))} |",
        f"| Elasticsearch bulk (helpers.bulk, batch {ceil.get('es_bulk_batch_size')}, "
        f"until refreshed) | {_fig(ceil.get('es_bulk'))} |",
    ]
    base = next((p for p in result.get("grid", []) if p["name"] == "baseline"), None)
    if base:
        lines.append(f"| **pipeline** simulator → processor → sink → searchable (baseline) | "
                     f"**{_fig(base.get('throughput_eps'))}** |")
    if "ratio_pipeline_over_min_ceiling" in result:
        lines += ["", f"**Ratio pipeline / min(ceilings) = "
                      f"{result['ratio_pipeline_over_min_ceiling']}** "
                      f"({result['pipeline_eps']:,.0f} / {result['ceiling_min_eps']:,.0f} "
                      f"events/s)."]
    if ceil.get("es_bulk_trials"):
        trials = ", ".join(f"{k}: {v:,}/s" for k, v in ceil["es_bulk_trials"].items())
        lines += ["", f"Bulk batch sizes tried (one run each): {trials}. Mean record "
                      f"{ceil.get('record_bytes_mean')} B on Kafka, document "
                      f"{ceil.get('document_bytes_mean')} B in Elasticsearch."]
    lines += ["", "## Scaling (one factor at a time around the baseline)", "",
              "| point | workers | establishments | rules compiled | throughput events/s | "
              "processor peak RSS MiB | sink peak RSS MiB | table changelog records | "
              "start-up s | cores used (median rep) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for point in result.get("grid", []):
        rss = point.get("peak_rss_mib", {})
        proc_rss = " + ".join(f"{v:.0f}" for k, v in sorted(rss.items())
                              if k.startswith("processor")) or "–"
        changelog = sum(point.get("changelog_records", {}).values())
        lines.append(
            f"| {point['name']} | {point['workers']} | {point['establishments']:,} | "
            f"{point.get('rules_loaded', '?')} | {_fig(point.get('throughput_eps'))} | "
            f"{proc_rss} | {rss.get('sink', 0):.0f} | {changelog:,} | "
            f"{point.get('startup_to_first_searchable_s', '–')} | {_cores(point)} |")
    if base and base.get("latency"):
        lines += ["", "## Latency production → searchable (baseline, paced)", "",
                  "| load | rate events/s | events per envelope | p50 s from the event | "
                  "p99 s from the event | p50 s from sending | p99 s from sending |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for load, figures in base["latency"].items():
            lines.append(f"| {load.replace('pct', ' %')} of throughput | "
                         f"{figures['rate_eps']:,} | {figures.get('envelope_events', 1)} | "
                         f"{_fig(figures.get('p50_s'))} | {_fig(figures.get('p99_s'))} | "
                         f"{_fig(figures.get('from_send_p50_s'))} | "
                         f"{_fig(figures.get('from_send_p99_s'))} |")
        lines += ["", "Latency is sampled on ~600 probe events per run by searches every "
                      "0.25 s without forced refresh (resolution 0.25 s; Elasticsearch's "
                      f"refresh interval is 1 s, the sink's batch wait {_SINK_WAIT_S:g} s, the "
                      f"processor's {_PROCESSOR_WAIT_S:g} s)."]
    if base:
        lines += ["", "## Peak memory (RSS, MiB) during the baseline", "",
                  "| component | peak RSS MiB |", "| --- | --- |"]
        for name, value in sorted(base.get("peak_rss_mib", {}).items()):
            lines.append(f"| {name} | {value:,.0f} |")
    if base and base.get("profile"):
        lines += ["", "## Hot spots (py-spy, baseline, one extra repetition)", ""]
        for name, prof in base["profile"].items():
            if not isinstance(prof, dict):
                lines.append(f"{name}: {prof}")
                continue
            lines += [f"**{name}** ({prof['samples']} samples of active threads). "
                      f"Own time: " + "; ".join(f"`{f}` {p} %" for f, p in prof["self"][:8]),
                      "",
                      "Inclusive, project code: "
                      + "; ".join(f"`{f}` {p} %" for f, p in prof["inclusive_project"][:10]),
                      ""]
    lines += ["", "## What limits it", "", *missed_aims(result), *limits(result), ""]
    return "\n".join(lines) + "\n"


def _median_of(stat: dict[str, Any] | None) -> str:
    return f"{stat['median']:,.0f}" if stat else "–"


def _envelope_lines(result: dict[str, Any]) -> list[str]:
    size = result.get("envelope_events")
    if size is None:
        return []
    mean = result.get("pipeline_events_per_record")
    measured = f" (measured: {mean} events per Kafka record)" if mean else ""
    return [f"Events travel in envelopes as agents send them: {size} events per envelope at "
            f"full load{measured}, what one establishment's agent sends in one second (its "
            f"time bound) at the national peak of 90,000 events/s over 3,036 "
            f"establishments (`--envelope-events`). The paced latency runs use what an "
            f"agent's second holds at that load (half as many at 50 %).", ""]


def _value(value: Any, unit: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and value < 10:
        return f"{value:,.3g}{unit}"
    return f"{value:,.0f}{unit}" if isinstance(value, (int, float)) else f"{value}{unit}"


def _headline_lines(result: dict[str, Any]) -> list[str]:
    """The figures issue 14 asks for, with their aims."""
    if "pipeline_events_per_s" not in result:
        return []
    aims = result.get("aims", {})

    def met(name: str) -> str:
        state = (aims.get(name) or {}).get("met")
        return "–" if state is None else ("met" if state else "**missed**")

    rows = [
        ("pipeline events/s (simulator → processor → sink → searchable)",
         _value(result.get("pipeline_events_per_s"), ""), "", ""),
        ("Elasticsearch bulk ceiling, documents/s", _value(
            result.get("ceiling_es_bulk_docs_per_s"), ""), "", ""),
        ("ratio pipeline / bulk ceiling", _value(result.get("ratio_pipeline_to_ceiling"), ""),
         "≥ 0.5", met("ratio_pipeline_to_ceiling")),
        ("processor CPU per event (all rules, signatures, correlation)",
         _value(result.get("processor_cpu_us_per_event"), " µs"), "≤ 40 µs",
         met("processor_cpu_us_per_event")),
        ("sink CPU per event", _value(result.get("sink_cpu_us_per_event"), " µs"), "≤ 10 µs",
         met("sink_cpu_us_per_event")),
        ("latency event produced → searchable at half load, p50",
         _value(result.get("latency_half_load_p50_s"), " s"), "", ""),
        ("latency event produced → searchable at half load, p99",
         _value(result.get("latency_half_load_p99_s"), " s"), "≤ 2 s",
         met("latency_half_load_p99_s")),
        ("the same from the envelope's sending, p50 / p99",
         f"{_value(result.get('latency_half_load_from_send_p50_s'), ' s')} / "
         f"{_value(result.get('latency_half_load_from_send_p99_s'), ' s')}", "", ""),
        ("throughput repetition length (median)", _value(result.get("run_seconds"), " s"),
         "", ""),
        ("fixed latency (p50 from sending, half load) / repetition length",
         _value(result.get("fixed_latency_share_of_run"), ""), "< 0.1",
         met("fixed_latency_share_of_run")),
    ]
    return ["## Headline (issue 14)", "", "| figure | value | aim | |",
            "| --- | --- | --- | --- |",
            *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
            "", "CPU per event: CPU seconds (user + system) of the process over each "
                "throughput repetition, from the first record produced until the last is "
                "searchable, divided by its events; median of the repetitions. Latency from "
                "the event: the time from the envelope's sending plus the time the event "
                "waited in its agent's envelope (an envelope holds one second of the agent's "
                "events, produced evenly over it).", ""]


def _median_rep(result: dict[str, Any]) -> dict[str, Any] | None:
    reps = (_baseline(result) or {}).get("repetitions") or []
    return sorted(reps, key=lambda r: r["eps"])[len(reps) // 2] if reps else None


def _spots(result: dict[str, Any], service: str, count: int = 5) -> str:
    """The service's py-spy hot spots, as a sentence; says when there is no profile."""
    base = _baseline(result) or {}
    prof = (base.get("profile") or {}).get(service)
    if not isinstance(prof, dict) or not prof.get("samples"):
        return "no py-spy profile was taken (py-spy missing or not allowed to attach)"
    own = "; ".join(f"`{f}` {p} %" for f, p in prof["self"][:count])
    ours = "; ".join(f"`{f}` {p} %" for f, p in prof["inclusive_project"][:count])
    return f"py-spy, own time: {own}; inclusive, project code: {ours}"


def missed_aims(result: dict[str, Any]) -> list[str]:
    """For each aim of issue 14 this run missed, what limits it, from the run's own figures
    (CPU per event, cores used, latencies, py-spy hot spots)."""
    aims = result.get("aims") or {}
    out: list[str] = []

    def missed(name: str) -> bool:
        return (aims.get(name) or {}).get("met") is False

    proc = result.get("processor_cpu_us_per_event")
    sink = result.get("sink_cpu_us_per_event")
    if missed("processor_cpu_us_per_event"):
        out.append(f"- Processor at {proc} µs of CPU per event (aim ≤ 40 µs): one worker "
                   f"core cannot process more than {1e6 / proc:,.0f} events/s. Where its time "
                   f"goes: {_spots(result, 'processor-0')}.")
    if missed("sink_cpu_us_per_event"):
        out.append(f"- Sink at {sink} µs of CPU per event (aim ≤ 10 µs): one sink core "
                   f"cannot index more than {1e6 / sink:,.0f} events/s. Where its time "
                   f"goes: {_spots(result, 'sink')}.")
    if missed("ratio_pipeline_to_ceiling"):
        eps = result.get("pipeline_events_per_s") or 0
        ceiling = result.get("ceiling_es_bulk_docs_per_s") or 0
        caps = {name: 1e6 / us for name, us in (("processor", proc), ("sink", sink)) if us}
        tightest = min(caps, key=lambda k: caps[k]) if caps else None
        line = (f"- Pipeline at {eps:,.0f} events/s against a bulk ceiling of "
                f"{ceiling:,.0f} docs/s (ratio {result.get('ratio_pipeline_to_ceiling')}, aim "
                f"≥ 0.5).")
        if tightest:
            line += (f" The tightest CPU bound is the {tightest}'s, {caps[tightest]:,.0f} "
                     f"events/s per core at its measured cost per event")
            line += ("; the machine's cores are shared with Kafka and Elasticsearch, so a "
                     "process gets less than a core (cores used per process below)."
                     if caps[tightest] > eps else ": it is the limit.")
        rep = _median_rep(result)
        if rep:
            cores = rep.get("cores_used", {})
            pipeline_cores = {k: v for k, v in cores.items()
                              if k.startswith(("processor", "sink"))}
            busy = rep.get("machine_cores_busy")
            machine = result["machine"]["cores"]
            if (pipeline_cores and max(pipeline_cores.values()) < 0.8
                    and busy is not None and busy < machine - 0.3):
                line += (" But no pipeline process was CPU-bound ("
                         + ", ".join(f"{k} {v} cores" for k, v in pipeline_cores.items())
                         + f"; the machine {busy} of {machine} cores busy, every process "
                         f"counted): the pipeline was waiting, not computing. It moved "
                         f"{rep.get('records', 0) / rep['seconds']:,.0f} Kafka records/s "
                         f"({rep['events'] / max(1, rep.get('records', 1)):.1f} events each); "
                         f"the waits are the processor's and the sink's batch timeouts and "
                         f"Elasticsearch's refresh, and the fixed latency's share of the "
                         f"repetition (below).")
            outside = (busy or 0) - sum(cores.values())
            if outside >= 0.3:
                line += (f" {outside:.2f} of the machine's {machine} cores were busy with "
                         f"processes outside the bench and the stack (other users of the "
                         f"machine): the figure is low by that much contention; rerun on a "
                         f"quiet machine.")
        out.append(line)
    if missed("latency_half_load_p99_s"):
        send = result.get("latency_half_load_from_send_p99_s")
        out.append(f"- Latency p99 at half load {result.get('latency_half_load_p99_s')} s "
                   f"(aim ≤ 2 s), of which up to 1 s is the event's wait in its agent's "
                   f"envelope (its time bound); from the envelope's sending the p99 is "
                   f"{send} s: the processor's batch wait ({_PROCESSOR_WAIT_S:g} s), the "
                   f"sink's ({_SINK_WAIT_S:g} s) and "
                   f"Elasticsearch's 1 s refresh add up before anything is searchable.")
    if missed("fixed_latency_share_of_run"):
        share = result.get("fixed_latency_share_of_run") or 0
        events = result.get("events_per_repetition", 0)
        needed = int(events * share / FIXED_LATENCY_SHARE_AIM) + 1
        out.append(f"- The fixed latency is {share:.0%} of a throughput repetition (aim "
                   f"< 10 %): the throughput above is understated; rerun with "
                   f"`--events {needed:,}` or more.")
    elif aims.get("fixed_latency_share_of_run"):
        out.append(f"- The fixed latency is "
                   f"{(result.get('fixed_latency_share_of_run') or 0):.0%} of a throughput "
                   f"repetition ({result.get('run_seconds')} s): the throughput is sustained, "
                   f"not start-up.")
    return out


def _cores(point: dict[str, Any]) -> str:
    reps = point.get("repetitions") or []
    if not reps:
        return "–"
    rep = sorted(reps, key=lambda r: r["eps"])[len(reps) // 2]
    return ", ".join(f"{k.split(' ')[0]} {v}" for k, v in rep.get("cores_used", {}).items())


def limits(result: dict[str, Any]) -> list[str]:
    """Say, from the measured CPU use, which component saturates at the baseline."""
    base = next((p for p in result.get("grid", []) if p["name"] == "baseline"), None)
    if not base or not base.get("repetitions"):
        return ["(no baseline measured)"]
    rep = sorted(base["repetitions"], key=lambda r: r["eps"])[len(base["repetitions"]) // 2]
    cores = rep.get("cores_used", {})
    total = sum(cores.values())
    busiest = max(cores, key=lambda k: cores[k]) if cores else "?"
    out = [f"- During the median baseline repetition the machine's "
           f"{result['machine']['cores']} cores were {total:.2f} cores busy with the measured "
           f"processes: " + ", ".join(f"{k} {v}" for k, v in sorted(
               cores.items(), key=lambda kv: -kv[1])) + ".",
           f"- The busiest process is **{busiest}** ({cores.get(busiest, 0)} cores). A "
           f"single Python worker cannot use more than one core; at ~1.0 it is CPU-bound."]
    machine = result["machine"]["cores"]
    idle = machine - total
    latency = (base.get("latency") or {}).get("50pct", {}).get("p50_s") or {}
    if idle >= 0.5:
        line = (f"- The machine was not CPU-saturated ({idle:.2f} of {machine} cores idle): "
                f"the repetition is bounded by latency, not compute.")
        if latency.get("median") and rep.get("seconds"):
            share = latency["median"] / rep["seconds"]
            line += (f" Each repetition ({rep['events']:,} records, {rep['seconds']} s) includes "
                     f"the pipeline's fixed production → searchable latency (p50 "
                     f"{latency['median']} s at half load: batch waits of the processor and "
                     f"sink, Elasticsearch's 1 s refresh), about {share:.0%} of it; the "
                     f"sustained rate is correspondingly higher than the figure above.")
        out.append(line)
    two = next((p for p in result.get("grid", []) if p["name"] == "2 workers"), None)
    if two and two.get("throughput_eps"):
        gain = two["throughput_eps"]["median"] / base["throughput_eps"]["median"]
        two_rep = sorted(two["repetitions"], key=lambda r: r["eps"])[len(two["repetitions"]) // 2]
        two_cores = sum(v for k, v in two_rep.get("cores_used", {}).items()
                        if k.startswith("processor"))
        why = (f"the two workers together used {two_cores:.2f} cores, about what one used "
               f"({cores.get('processor-0', 0)}): the same work split in two, not more work done"
               if two_cores < 1.3 * cores.get("processor-0", 0) else
               "the second worker found no idle core next to Kafka and Elasticsearch")
        out.append(f"- A second processor worker changes throughput by x{gain:.2f}: {why}.")
    one = next((p for p in result.get("grid", []) if p["name"] == "1 rule"), None)
    if one and one.get("throughput_eps"):
        gain = one["throughput_eps"]["median"] / base["throughput_eps"]["median"]
        one_rep = sorted(one["repetitions"], key=lambda r: r["eps"])[len(one["repetitions"]) // 2]
        per_event_all = cores.get("processor-0", 0) / rep["eps"] * 1e6 if rep["eps"] else 0
        per_event_one = (one_rep.get("cores_used", {}).get("processor-0", 0) / one_rep["eps"]
                         * 1e6 if one_rep["eps"] else 0)
        out.append(f"- With 1 rule instead of all, throughput is x{gain:.2f} the baseline; the "
                   f"processor's CPU per event is {per_event_all:.0f} µs with all rules and "
                   f"{per_event_one:.0f} µs with one (the difference is the Sigma engine's "
                   f"share, when it exceeds this run's noise).")
    return out
