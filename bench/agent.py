"""EVTX → Kafka through the whole agent, against the raw ``evtx`` parse rate, in one run.

    .venv/bin/python -m bench.agent [--events 20000] [--repeat 3] [--envelope-bytes N]
                                    [--bootstrap HOST:PORT]

Two inputs, each compared with the raw parse rate *of the same input*:

- ``per_file``: SigmaHQ's regression ``.evtx`` files as they are (128 files, ~1.2 records
  each): per-file costs (open, glob, positions) dominate, as for an agent importing many
  small exports;
- ``multi_record``: one ``.evtx`` holding every chunk of those files (built here: the
  ``evtx`` package cannot write EVTX, but a file is a header plus 64 KiB chunks, each with its
  own string and template tables and checksums, so the chunks are copied verbatim under a
  new header). No per-file cost, but still one or two records per chunk: real live logs pack
  a hundred or more per chunk, which makes the raw parse faster still.

Both rates are events per CPU-second of this process (all its threads, librdkafka's
included), so the figure is "per core" and comparable on a shared machine; wall-clock rates
are printed too. The agent path is the real one: WindowsFileSource (the shared evtx reader)
→ ECS mapping → pseudonymisation (default fields) → schema validation → fsync'd spool →
envelopes (:mod:`schemas.envelope`, one Ed25519 signature per envelope) → transactional
producer → commit. It writes to a scratch topic (``bench.agent``, deleted afterwards) so the
shared pipeline never sees benchmark records. Each agent step is also timed alone over the
same records (read + parse + ECS mapping, pseudonymisation + serialisation, schema
validation, framing + signing the envelopes, spool + shipping to the broker), so the
figures show where the time goes.
Results: printed, and written to ``bench/results/agent.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

from confluent_kafka.admin import NewTopic
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from evtx import PyEvtxParser

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from producers.agent import ship  # noqa: E402
from producers.agent.pipeline import Finisher  # noqa: E402
from producers.agent.pseudonymise import Pseudonymiser  # noqa: E402
from producers.agent.ship import Shipper  # noqa: E402
from producers.agent.sources.base import Context  # noqa: E402
from producers.agent.sources.evtx import WindowsFileSource  # noqa: E402
from producers.agent.spool import Spool  # noqa: E402
from producers.signing import Signer  # noqa: E402
from runtime.kafka import KafkaConnection  # noqa: E402
from runtime.settings import load_settings  # noqa: E402
from schemas import envelope  # noqa: E402
from schemas.organization import Organization  # noqa: E402

#: The shared data sit next to the main checkout (``../shared``); a git worktree is one level
#: deeper, so the nearest ancestor that has them is taken.
SHARED = next((p / "shared" for p in ROOT.parents if (p / "shared" / "data").is_dir()),
              ROOT.parent / "shared")
SAMPLES = sorted((SHARED / "data" / "sigma" / "regression").rglob("*.evtx"))
TOPIC = "bench.agent"
HEADER_BLOCK, CHUNK = 4096, 65536
ORG = Organization(id="750712184", name="CHU Bench", type="university_hospital",
                   region="ile-de-france")


def fresh_agent_id() -> str:
    """An agent id of its own per run: its transactional id and progress group start empty,
    as for a new agent (a reused id finds the last run's position, which its new spool does
    not hold, and says so at every start)."""
    return f"bench-agent-{time.time_ns()}"


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def multi_record_evtx(out: Path, samples: list[Path]) -> int:
    """Write one EVTX file holding every chunk of ``samples``; returns its chunk count."""
    chunks = []
    for path in samples:
        data = path.read_bytes()
        header_block = struct.unpack_from("<H", data, 40)[0]
        chunks.extend(data[offset:offset + CHUNK]
                      for offset in range(header_block, len(data) - CHUNK + 1, CHUNK)
                      if data[offset:offset + 8] == b"ElfChnk\x00")
    header = bytearray(HEADER_BLOCK)
    header[:8] = b"ElfFile\x00"
    # first chunk, last chunk, next record id, header size, minor, major, block size, chunks
    struct.pack_into("<QQQIHHHH", header, 8, 0, len(chunks) - 1, 1, 128, 2, 3, HEADER_BLOCK,
                     len(chunks) & 0xFFFF)
    struct.pack_into("<I", header, 120, 0)  # flags: clean, not full
    struct.pack_into("<I", header, 124, zlib.crc32(bytes(header[:120])))
    out.write_bytes(bytes(header) + b"".join(chunks))
    return len(chunks)


def raw_parse(events: int, paths: list[Path]) -> dict[str, float]:
    """The ceiling: the evtx package rendering records as JSON, one thread."""
    done = 0
    wall0, cpu0 = clocks()
    while done < events:
        for path in paths:
            for _record in PyEvtxParser(str(path), number_of_threads=1).records_json():
                done += 1
    wall1, cpu1 = clocks()
    return {"events": done, "cpu_s": cpu1 - cpu0, "wall_s": wall1 - wall0,
            "per_core_eps": done / (cpu1 - cpu0), "wall_eps": done / (wall1 - wall0)}


def agent_path(events: int, kafka: KafkaConnection, spool_dir: Path,
               paths: list[Path]) -> dict[str, float]:
    agent_id = fresh_agent_id()
    ctx = Context(ORG.id, agent_id)
    finisher = Finisher(ORG, Signer(agent_id, Ed25519PrivateKey.generate()),
                        Pseudonymiser(b"k" * 32))
    spool = Spool(spool_dir, fsync=True)
    shipper = Shipper(spool, kafka=kafka, topic=TOPIC, signer=finisher.signer)
    read = 0
    wall0, cpu0 = clocks()
    while read < events:
        source = WindowsFileSource("bench", [str(p) for p in paths], ctx)
        while docs := source.poll(2000):
            spool.append([finisher.record(d, "bench") for d in docs])
            read += len(docs)
            shipper.pump(10_000)
    while spool.depth or shipper.in_flight:
        if shipper.pump(10_000) == 0:
            shipper.flush(0.2)
    wall1, cpu1 = clocks()
    spool.close()
    return {"events": read, "delivered": shipper.delivered, "envelopes": shipper.envelopes,
            "failed": shipper.failed,
            "invalid": finisher.invalid, "cpu_s": cpu1 - cpu0, "wall_s": wall1 - wall0,
            "per_core_eps": read / (cpu1 - cpu0), "wall_eps": read / (wall1 - wall0)}


def stages(events: int, kafka: KafkaConnection, spool_dir: Path,
           paths: list[Path]) -> dict[str, float]:
    """Per-record CPU cost of each agent step (µs), to show where the time goes. Each step
    runs alone over all the records, so the figures add up to about the agent's own."""
    agent_id = fresh_agent_id()
    ctx = Context(ORG.id, agent_id)
    signer = Signer(agent_id, Ed25519PrivateKey.generate())
    finisher = Finisher(ORG, signer, Pseudonymiser(b"k" * 32))
    finisher.validate_every = 1 << 62  # validation is timed on its own below
    docs: list[dict] = []
    cpu0 = time.process_time()
    while len(docs) < events:
        source = WindowsFileSource("bench", [str(p) for p in paths], ctx)
        source.rescan_s = 0
        while batch := source.poll(2000):
            docs.extend(batch)
    cpu1 = time.process_time()
    values = [finisher.value(d) for d in docs]
    cpu2 = time.process_time()
    for _eid, value in values:
        finisher.check(value)
    cpu3 = time.process_time()
    # Framing and signing the envelopes is timed alone here; the shipper does it again as
    # they leave (with the spool's sequences), so the ship step below includes it too.
    establishment = finisher.key.decode()
    for n, run in enumerate(envelope.chunks((value for _eid, value in values),
                                            max_bytes=ship.TARGET_BYTES), 1):
        signer.signature(envelope.frame(signer.agent_id, establishment, n, run), n)
    records = [(finisher.key, eid, b"", value) for eid, value in values]
    cpu4 = time.process_time()
    spool = Spool(spool_dir, fsync=True)
    shipper = Shipper(spool, kafka=kafka, topic=TOPIC, signer=signer)
    shipper.pump(0)  # connected before the clock starts, as in a running agent
    cpu5 = time.process_time()
    for start in range(0, len(records), 2000):
        spool.append(records[start:start + 2000])
        shipper.pump(10_000)
    while spool.depth or shipper.in_flight:
        if shipper.pump(10_000) == 0:
            shipper.flush(0.2)
    cpu6 = time.process_time()
    spool.close()
    n = len(docs)
    return {"read_parse_ecs_us": 1e6 * (cpu1 - cpu0) / n,
            "pseudonymise_serialise_us": 1e6 * (cpu2 - cpu1) / n,
            "validate_us": 1e6 * (cpu3 - cpu2) / n,
            "envelope_sign_us": 1e6 * (cpu4 - cpu3) / n,
            # The shipper frames and signs as it sends: that, timed alone above, is taken out.
            "spool_ship_us": 1e6 * ((cpu6 - cpu5) - (cpu4 - cpu3)) / n}


def compare(events: int, repeat: int, kafka: KafkaConnection, paths: list[Path]) -> dict[str, Any]:
    """Raw parse and agent runs interleaved, one ratio per repeat (the machine is shared)."""
    runs = []
    for _ in range(repeat):
        raw = raw_parse(events, paths)
        with tempfile.TemporaryDirectory() as tmp:
            agent = agent_path(events, kafka, Path(tmp), paths)
        runs.append({"raw_evtx_parse": raw, "agent_to_kafka": agent,
                     "ratio_per_core": agent["per_core_eps"] / raw["per_core_eps"]})
    with tempfile.TemporaryDirectory() as tmp:
        by_stage = stages(events // 2, kafka, Path(tmp), paths)
    ratios = [run["ratio_per_core"] for run in runs]
    median = sorted(runs, key=lambda run: run["ratio_per_core"])[len(runs) // 2]
    return {
        "files": len(paths),
        "raw_evtx_parse": median["raw_evtx_parse"],
        "agent_to_kafka": median["agent_to_kafka"],
        "ratio_per_core": round(statistics.median(ratios), 3),
        "ratio_min": round(min(ratios), 3), "ratio_max": round(max(ratios), 3),
        "ratios": [round(r, 3) for r in ratios],
        "agent_cpu_us_per_event_by_stage": by_stage,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--envelope-bytes", type=int, default=envelope.TARGET_BYTES,
                        help="size at which the shipper closes an envelope; 1 ships one "
                        "event per record, as before envelopes (then the results go to "
                        "agent-single.json, for comparison)")
    parser.add_argument("--bootstrap", default=None,
                        help="plaintext broker (default: the settings' connection, which "
                        "`vigie stack up` writes for the local stack)")
    args = parser.parse_args()
    ship.TARGET_BYTES = args.envelope_bytes
    kafka = (KafkaConnection(bootstrap=args.bootstrap) if args.bootstrap
             else load_settings().kafka)
    admin = kafka.admin()
    admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            combined = Path(tmp) / "regression-chunks.evtx"
            chunks = multi_record_evtx(combined, SAMPLES)
            inputs = {"per_file": SAMPLES, "multi_record": [combined]}
            by_input = {name: compare(args.events, args.repeat, kafka, paths)
                        for name, paths in inputs.items()}
    finally:
        admin.delete_topics([TOPIC])[TOPIC].result()
    result = {
        "bench": "agent", "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "samples": len(SAMPLES), "multi_record_chunks": chunks,
        "clock": "process CPU time (all threads); raw and agent interleaved, one ratio per repeat",
        "envelope_bytes": args.envelope_bytes,
        # The headline is the per-file input, as the first measurement.
        "ratio_per_core": by_input["per_file"]["ratio_per_core"], "target_ratio": 0.5,
        **by_input,
    }
    for name, figures in by_input.items():
        raw, agent = figures["raw_evtx_parse"], figures["agent_to_kafka"]
        print(f"{name}:")
        print(f"  raw evtx parse : {raw['per_core_eps']:>9.0f} events/s per core "
              f"({raw['wall_eps']:.0f}/s wall)")
        print(f"  agent → Kafka  : {agent['per_core_eps']:>9.0f} events/s per core "
              f"({agent['wall_eps']:.0f}/s wall, {agent['delivered']} acknowledged)")
        print(f"  ratio          : {figures['ratio_per_core']:.2f} "
              f"[{figures['ratio_min']:.2f}–{figures['ratio_max']:.2f}] (target ≥ 0.5)")
        print("  agent CPU per event: " + ", ".join(
            f"{k} {v:.0f}" for k, v in figures["agent_cpu_us_per_event_by_stage"].items()))
    out = ROOT / "bench" / "results" / ("agent.json" if args.envelope_bytes
                                         == envelope.TARGET_BYTES else "agent-single.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
