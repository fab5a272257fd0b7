"""EVTX → Kafka through the whole agent, against the raw ``evtx`` parse rate, in one run.

    .venv/bin/python bench/agent.py [--events 20000] [--bootstrap localhost:9092]

Both rates are events per CPU-second of this process (all its threads, librdkafka's
included), so the figure is "per core" and comparable on a shared machine; wall-clock rates
are printed too. The agent path is the real one: WindowsFileSource (the shared evtx reader)
→ ECS mapping → pseudonymisation (default fields) → schema validation → Ed25519 signature →
fsync'd spool → idempotent producer → broker acknowledgement. It writes to a scratch topic
(``bench.agent``, deleted afterwards) so the shared pipeline never sees benchmark records.
Results: printed, and written to ``bench/results/agent.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from evtx import PyEvtxParser

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from producers.agent.pipeline import Finisher  # noqa: E402
from producers.agent.pseudonymise import Pseudonymiser  # noqa: E402
from producers.agent.ship import Shipper  # noqa: E402
from producers.agent.sign import Signer  # noqa: E402
from producers.agent.sources.base import Context  # noqa: E402
from producers.agent.sources.evtx import WindowsFileSource  # noqa: E402
from producers.agent.spool import Spool  # noqa: E402
from schemas.organization import Organization  # noqa: E402

SAMPLES = sorted((ROOT.parent / "shared" / "data" / "sigma" / "regression").rglob("*.evtx"))
TOPIC = "bench.agent"
ORG = Organization(id="750712184", name="CHU Bench", type="university_hospital",
                   region="ile-de-france")


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def raw_parse(events: int) -> dict[str, float]:
    """The ceiling: the evtx package rendering records as JSON, one thread."""
    done = 0
    wall0, cpu0 = clocks()
    while done < events:
        for path in SAMPLES:
            for _record in PyEvtxParser(str(path), number_of_threads=1).records_json():
                done += 1
    wall1, cpu1 = clocks()
    return {"events": done, "cpu_s": cpu1 - cpu0, "wall_s": wall1 - wall0,
            "per_core_eps": done / (cpu1 - cpu0), "wall_eps": done / (wall1 - wall0)}


def agent_path(events: int, bootstrap: str, spool_dir: Path) -> dict[str, float]:
    ctx = Context(ORG.id, "bench-agent")
    finisher = Finisher(ORG, Signer("bench-agent", Ed25519PrivateKey.generate()),
                        Pseudonymiser(b"k" * 32))
    spool = Spool(spool_dir, fsync=True)
    shipper = Shipper(spool, bootstrap=bootstrap, topic=TOPIC, agent_id="bench-agent")
    read = 0
    wall0, cpu0 = clocks()
    while read < events:
        source = WindowsFileSource("bench", [str(p) for p in SAMPLES], ctx)
        while docs := source.poll(2000):
            spool.append([finisher.record(d, "bench") for d in docs])
            read += len(docs)
            shipper.pump(10_000)
    while spool.depth or shipper.in_flight:
        if shipper.pump(10_000) == 0:
            shipper.flush(0.2)
    wall1, cpu1 = clocks()
    spool.close()
    return {"events": read, "delivered": shipper.delivered, "failed": shipper.failed,
            "invalid": finisher.invalid, "cpu_s": cpu1 - cpu0, "wall_s": wall1 - wall0,
            "per_core_eps": read / (cpu1 - cpu0), "wall_eps": read / (wall1 - wall0)}


def stages(events: int) -> dict[str, float]:
    """Per-record CPU cost of each agent step (µs), to show where the time goes."""
    ctx = Context(ORG.id, "bench-agent")
    signer = Signer("bench-agent", Ed25519PrivateKey.generate())
    finisher = Finisher(ORG, signer, Pseudonymiser(b"k" * 32))
    docs: list[dict] = []
    cpu0 = time.process_time()
    while len(docs) < events:
        source = WindowsFileSource("bench", [str(p) for p in SAMPLES], ctx)
        source.rescan_s = 0
        while batch := source.poll(2000):
            docs.extend(batch)
    cpu1 = time.process_time()
    values = [finisher.value(d)[1] for d in docs]
    cpu2 = time.process_time()
    for value in values:
        signer.signature(value)
    cpu3 = time.process_time()
    n = len(docs)
    return {"read_parse_ecs_us": 1e6 * (cpu1 - cpu0) / n,
            "pseudonymise_validate_serialise_us": 1e6 * (cpu2 - cpu1) / n,
            "sign_us": 1e6 * (cpu3 - cpu2) / n}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--bootstrap", default="localhost:9092")
    args = parser.parse_args()
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result()
    try:
        raw = raw_parse(args.events)
        with tempfile.TemporaryDirectory() as tmp:
            agent = agent_path(args.events, args.bootstrap, Path(tmp))
        cost = stages(args.events // 2)
    finally:
        admin.delete_topics([TOPIC])[TOPIC].result()
    ratio = agent["per_core_eps"] / raw["per_core_eps"]
    result = {
        "bench": "agent", "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "samples": len(SAMPLES), "raw_evtx_parse": raw, "agent_to_kafka": agent,
        "ratio_per_core": round(ratio, 3), "target_ratio": 0.5,
        "agent_cpu_us_per_event_by_stage": cost,
    }
    print(f"raw evtx parse : {raw['per_core_eps']:>9.0f} events/s per core "
          f"({raw['wall_eps']:.0f}/s wall)")
    print(f"agent → Kafka  : {agent['per_core_eps']:>9.0f} events/s per core "
          f"({agent['wall_eps']:.0f}/s wall, {agent['delivered']} acknowledged)")
    print(f"ratio          : {ratio:.2f} (target ≥ 0.5)")
    print("agent CPU per event: " + ", ".join(f"{k} {v:.0f}" for k, v in cost.items()))
    out = ROOT / "bench" / "results" / "agent.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
