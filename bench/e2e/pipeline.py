"""The pipeline under load: processor worker(s) and sink as real processes on the real stack.

Fresh consumer groups without replaying history: before the processes start, the bench
commits, for the new groups, the current end offset of every pipeline topic (a group with no
member may have offsets committed for it). The processor and the sink then start exactly
where the run's records will land, whatever ``auto.offset.reset`` says and however long they
take to join — no record of the run can be skipped (as ``latest`` could, for records
produced before the group's first fetch) and none of the week of history in ``events.raw``
is re-read (as ``earliest`` would). No code of the pipeline changes for the bench.

Topics are shared with whoever else uses the stack, so records of other runs that arrive
meanwhile are processed too; the bench counts them ("foreign" records) beside each figure.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from elasticsearch import Elasticsearch

from bench.e2e.workload import Record, Registry, event_count
from deploy.local.elasticsearch import Elasticsearch as LocalElasticsearch
from deploy.local.kafka import Kafka as LocalKafka
from deploy.local.layout import Layout
from deploy.local.pipeline import Service
from runtime.kafka import KafkaConnection, produce_blocking
from runtime.settings import REPO_ROOT
from runtime.topics import end_offsets, start_group_at_end
from schemas import indices
from schemas.topics import EVENTS_RAW

POLL_S = 0.25


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Config:
    """One point of the scaling grid."""

    name: str
    workers: int = 1
    establishments: int = 3036
    rules: str = "all"  # "1", "100" or "all"


@dataclass
class Pipeline:
    """Processor worker(s) + sink with fresh groups; ``start`` then ``stop``."""

    config: Config
    registry: Registry
    rule_dir: Path | None
    kafka: KafkaConnection
    work: Path
    tag: str
    processors: list[Service] = field(default_factory=list)
    sink: Service | None = None

    @property
    def app_id(self) -> str:
        """Under the processor's group prefix (deploy/security/kafka-acls.yaml)."""
        return f"vigie-processor-bench-{self.tag}"

    @property
    def sink_group(self) -> str:
        """Under the sink's group prefix."""
        return f"vigie-sink-bench-{self.tag}"

    def env(self) -> dict[str, str]:
        env = {
            "VIGIE_PROCESSOR_APP_ID": self.app_id,
            "VIGIE_SINK_GROUP": self.sink_group,
            "VIGIE_REGISTRY": str(self.registry.path),
            # The records are signed by simulated agents: trusted in demo mode only.
            "VIGIE_DEMO_MODE": "true",
            "VIGIE_LOG_LEVEL": "INFO",
            # Faust keeps table files under <cwd>/<app id>-data unless told otherwise.
            "APP_DATADIR": str(self.work / "faust-data"),
        }
        if self.rule_dir is not None:
            env["VIGIE_RULE_DIRS"] = json.dumps([str(self.rule_dir)])
        return env

    def start(self) -> None:
        start_group_at_end(self.kafka, self.app_id)
        start_group_at_end(self.kafka, self.sink_group)
        for i in range(self.config.workers):
            env = {**self.env(), "VIGIE_METRICS_PORT": str(free_port())}
            self.processors.append(
                Service(f"processor-{i}", ["process"], self.work, env).start())
        env = {**self.env(), "VIGIE_METRICS_PORT": str(free_port())}
        self.sink = Service("sink", ["sink"], self.work, env).start()

    @property
    def services(self) -> list[Service]:
        return [*self.processors, *([self.sink] if self.sink else [])]

    def check_alive(self) -> None:
        for service in self.services:
            if not service.alive:
                raise RuntimeError(f"{service.name} died:\n{service.tail(40)}")

    def rules_loaded(self) -> int | None:
        """What the processor's Sigma engine compiled (from its start-up log line)."""
        if not self.processors:
            return None
        found = re.search(r"Sigma engine: (\d+) rules compiled",
                          self.processors[0].log_path.read_text(errors="replace"))
        return int(found.group(1)) if found else None

    def stop(self) -> None:
        for service in self.services:
            service.stop(grace=30)
        self.cleanup()

    def cleanup(self) -> None:
        """Delete the run's consumer groups and Faust's changelog topics and table files."""
        admin = self.kafka.admin()
        changelogs = [t for t in admin.list_topics(timeout=15).topics
                      if t.startswith(self.app_id + "-")]
        if changelogs:
            for future in admin.delete_topics(changelogs).values():
                _quietly(future.result)
        groups = [self.app_id, self.sink_group]
        for future in admin.delete_consumer_groups(groups, request_timeout=15).values():
            _quietly(future.result)
        shutil.rmtree(self.work / "faust-data", ignore_errors=True)

    def changelog_records(self) -> dict[str, int]:
        """Records written to each Faust table's changelog: the size of the state."""
        admin = self.kafka.admin()
        names = [t for t in admin.list_topics(timeout=15).topics
                 if t.startswith(self.app_id + "-") and t.endswith("-changelog")]
        return {n.removeprefix(self.app_id + "-"): sum(end_offsets(self.kafka, n).values())
                for n in names}


def _quietly(call: Callable[[], Any]) -> None:
    with contextlib.suppress(Exception):  # cleanup of bench leftovers is best effort
        call()


# ------------------------------------------------------------------------ searchability
def searchable(es: Elasticsearch, ids: list[str]) -> set[str]:
    """Which of ``ids`` a search finds right now (no forced refresh: searchable means after
    Elasticsearch's own refresh, as an operator would see it)."""
    found: set[str] = set()
    for start in range(0, len(ids), 5000):
        chunk = ids[start:start + 5000]
        result = es.search(index=indices.EVENTS.alias, size=len(chunk), source=False,
                           query={"ids": {"values": chunk}}, track_total_hits=False)
        found.update(hit["_id"] for hit in result["hits"]["hits"])
    return found


def produce(kafka: KafkaConnection, batch: list[Record]) -> float:
    """Produce ``batch`` to ``events.raw`` as fast as the broker takes it; returns the
    wall-clock start time."""
    began = time.time()
    _produce_stamped(kafka, batch, None, 0, {}, {})
    return began


def cpu_seconds(pids: dict[str, int | None]) -> dict[str, float]:
    """CPU time (user + system, children included) used so far by each process tree."""
    out: dict[str, float] = {}
    for name, pid in pids.items():
        if pid is None:
            continue
        try:
            proc = psutil.Process(pid)
            # The bench's own children are the pipeline's processes, counted apart.
            tree = [proc] if pid == os.getpid() else [proc, *proc.children(recursive=True)]
            out[name] = sum(sum(p.cpu_times()[:2]) for p in tree)
        except psutil.Error:
            continue
    return out


def drain(pipe: Pipeline, es: Elasticsearch, batch: list[Record],
          timeout: float = 600) -> dict[str, Any]:
    """Produce ``batch`` as fast as Kafka takes it; time until the last events of every
    partition are searchable. Partitions are processed in order end to end (the processor
    keys outputs like its input), so the tail being searchable means the run is. Rates are
    in events; the CPU seconds each process used over the run are kept, for the cost per
    event."""
    before = sum(end_offsets(pipe.kafka, EVENTS_RAW.name).values())
    events = event_count(batch)
    pids = {**{s.name: s.proc.pid for s in pipe.services if s.proc}, **stack_pids(),
            "bench (producer, polling)": os.getpid()}
    cpu_before = cpu_seconds(pids)
    machine_before = sum(psutil.cpu_times()[:3])  # user, nice, system: all processes
    began = produce(pipe.kafka, batch)
    produced_s = time.time() - began
    tail: list[str] = []
    for rec in reversed(batch):
        if len(tail) >= 600:
            break
        tail += rec.event_ids
    deadline = time.monotonic() + timeout
    while True:
        pipe.check_alive()
        if len(searchable(es, tail)) == len(tail):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"run not searchable after {timeout} s")
        time.sleep(POLL_S)
    seconds = time.time() - began
    cpu_after = cpu_seconds(pids)
    machine = (sum(psutil.cpu_times()[:3]) - machine_before) / seconds
    used = {name: cpu_after[name] - cpu_before[name] for name in cpu_after
            if name in cpu_before}
    after = sum(end_offsets(pipe.kafka, EVENTS_RAW.name).values())
    missing = events - len(searchable(es, [i for rec in batch for i in rec.event_ids]))
    return {"events": events, "records": len(batch), "seconds": round(seconds, 2),
            "eps": events / seconds, "produce_seconds": round(produced_s, 2),
            "missing_at_end": missing, "foreign_records": after - before - len(batch),
            "cpu_seconds": {name: round(v, 3) for name, v in used.items()},
            "cores_used": {name: round(v / seconds, 2) for name, v in used.items()},
            "machine_cores_busy": round(machine, 2)}


def paced(pipe: Pipeline, es: Elasticsearch, batch: list[Record], rate: float,
          stamp_every: int, timeout: float = 300, agent_wait_s: float = 1.0
          ) -> dict[str, Any]:
    """Produce at ``rate`` events/s; latency to searchable of one event of every
    ``stamp_every``-th record, seen by polling searches every 0.25 s (that is the
    resolution).

    Two latencies: from the envelope's sending, what the pipeline adds; and from the
    event's production, which adds the time the event waited in its agent's envelope.
    An envelope holds an agent's ``agent_wait_s`` (its time bound) of events produced evenly
    over it: its ``p``-th of ``n`` events waited ``(n - p - 0.5) / n`` of it. The probed
    event's position varies from one envelope to the next, so every wait is represented."""
    seen: dict[str, float] = {}
    done = threading.Event()
    lock = threading.Lock()

    def watch() -> None:
        while True:
            with lock:
                pending = [i for i in stamps if i not in seen][:3000]
            asked = time.time()
            if pending:
                for found in searchable(es, pending):
                    seen[found] = asked
            with lock:
                finished = done.is_set() and len(seen) == len(stamps)
            if finished:
                return
            time.sleep(POLL_S)

    # Stamps are filled while producing: the watcher reads them under the lock.
    class Stamps(dict[str, float]):
        def __setitem__(self, key: str, value: float) -> None:
            with lock:
                super().__setitem__(key, value)

    stamps = Stamps()
    waits: dict[str, float] = {}
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    before = sum(end_offsets(pipe.kafka, EVENTS_RAW.name).values())
    began = time.time()
    _produce_stamped(pipe.kafka, batch, rate, stamp_every, stamps, waits, agent_wait_s)
    produced_s = time.time() - began
    done.set()
    watcher.join(timeout)
    pipe.check_alive()
    after = sum(end_offsets(pipe.kafka, EVENTS_RAW.name).values())
    from_send = sorted(seen[i] - stamps[i] for i in seen)
    from_event = sorted(seen[i] - stamps[i] + waits[i] for i in seen)
    events = event_count(batch)
    return {"rate": round(rate), "events": events, "records": len(batch),
            "events_per_record": round(events / len(batch), 1),
            "achieved_rate": round(events / produced_s),
            "probes": len(stamps), "probes_seen": len(seen),
            "p50_s": percentile(from_event, 50), "p99_s": percentile(from_event, 99),
            "max_s": from_event[-1] if from_event else None,
            "from_send_p50_s": percentile(from_send, 50),
            "from_send_p99_s": percentile(from_send, 99),
            "foreign_records": after - before - len(batch)}


def _produce_stamped(kafka: KafkaConnection, batch: list[Record], rate: float | None,
                     stamp_every: int, stamps: dict[str, float], waits: dict[str, float],
                     agent_wait_s: float = 1.0) -> None:
    """Produce ``batch`` (paced at ``rate`` events/s if given), noting in ``stamps`` the
    wall-clock sending time of one event of every ``stamp_every``-th record, and in ``waits``
    how long that event waited in its agent's envelope (see :func:`paced`); raise if
    anything is undelivered."""
    overrides: dict[str, Any] = {"message.max.bytes": 4 * 1024 * 1024}
    if rate:
        overrides["linger.ms"] = 5  # paced: do not add 20 ms of batching to every latency
    producer = kafka.producer(**overrides)
    failed: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    began = time.time()
    sent_events = 0
    for i, rec in enumerate(batch):
        if rate:
            wait = began + sent_events / rate - time.time()
            if wait > 0:
                time.sleep(wait)
        if stamp_every and i % stamp_every == 0:
            position = (i // stamp_every * 7) % rec.count  # spread over the envelope
            waits[rec.event_ids[position]] = (
                agent_wait_s * (rec.count - position - 0.5) / rec.count if rec.count > 1
                else 0.0)
            stamps[rec.event_ids[position]] = time.time()
        produce_blocking(producer, EVENTS_RAW.name, rec.key, rec.value, on_delivery,
                         rec.headers)
        producer.poll(0)
        sent_events += rec.count
    left = producer.flush(120)
    if left or failed:
        raise RuntimeError(f"{left} records undelivered, {len(failed)} failed: {failed[:3]}")


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of sorted ``values``."""
    if not values:
        return None
    rank = max(0, min(len(values) - 1, round(pct / 100 * len(values) + 0.5) - 1))
    return round(values[rank], 3)


# ------------------------------------------------------------------------------ memory
class RssSampler:
    """Peak resident memory of named process trees, sampled every half second."""

    def __init__(self) -> None:
        self.peaks: dict[str, int] = {}
        self._targets: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def watch(self, name: str, pid: int | None) -> None:
        if pid is not None:
            self._targets[name] = pid

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join(5)
        return {name: round(peak / 2**20, 1) for name, peak in self.peaks.items()}

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in list(self._targets.items()):
                try:
                    proc = psutil.Process(pid)
                    tree = ([proc] if pid == os.getpid()
                            else [proc, *proc.children(recursive=True)])
                    rss = sum(p.memory_info().rss for p in tree)
                except psutil.Error:
                    continue
                self.peaks[name] = max(self.peaks.get(name, 0), rss)
            self._stop.wait(0.5)


def stack_pids() -> dict[str, int | None]:
    layout = Layout.default()
    return {"kafka": LocalKafka(layout).pid(), "elasticsearch": LocalElasticsearch(layout).pid()}


# ----------------------------------------------------------------------------- profiling
def profile(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """Start py-spy on ``pid`` for ``seconds`` (collapsed stacks in ``out``); None if py-spy
    is not installed or cannot attach (it needs ptrace rights)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return None
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                             "--rate", "50", "--format", "raw", "--nonblocking",
                             "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def hot_spots(collapsed: Path, top: int = 12) -> dict[str, Any]:
    """Self and inclusive shares of sampled time per function, from py-spy's raw output."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";")]
        total += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for name in set(frames):
            inclusive[name] = inclusive.get(name, 0) + count

    def share(table: dict[str, int]) -> list[tuple[str, float]]:
        ranked = sorted(table.items(), key=lambda kv: -kv[1])[:top]
        return [(name, round(100 * n / total, 1)) for name, n in ranked]

    ours = {k: v for k, v in inclusive.items()
            if any(k.startswith(p) for p in ("processors/", "schemas/", "sinks/", "producers/"))}
    return {"samples": total, "self": share(own), "inclusive_project": share(ours)}


def _frame_name(frame: str) -> str:
    """``func (path/to/file.py:12)`` → ``pkg/file.py:func`` relative to site-packages or the
    repository, so that lines of one function aggregate."""
    match = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame.strip())
    if not match:
        return frame.strip()
    func, path = match.groups()
    for marker in ("site-packages/", f"{REPO_ROOT}/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        path = re.sub(r".*/lib/python3\.\d+/", "", path)
    return f"{path}:{func}"
