"""What TLS+SASL cost: the raw ceilings on the secured stack against a plaintext twin.

``python -m bench.security`` (also run by ``make bench``, after ``bench.e2e``).

The local stack is secured (Kafka SASL_SSL with SCRAM-SHA-512 and the StandardAuthorizer,
Elasticsearch with TLS on HTTP and authenticated users). To say what that costs, this bench
starts, for the length of the run, a **throw-away plaintext Kafka** (same jars, same
``server.properties`` minus its security settings, one KRaft node, no authorizer) and, unless
``--kafka-only``, a **throw-away Elasticsearch** (same distribution and ``elasticsearch.yml``
with ``xpack.security.enabled: false``), both in a temporary folder on free ports, never the
shared stack's. It then measures the raw ceilings of ``bench.e2e`` with the very same code,
records and client settings (apart from security) on both sides, interleaved figure by
figure (secured then plaintext, and the other way round in the next round) so that the drift
of this shared machine hits both alike, and reports per figure the median of each side and
the median of the per-round ratios secured / plaintext (1.0: security costs nothing; 0.8: it
costs 20 % of the throughput).

The throw-away servers are stopped and their folder deleted at the end, on an error, on
Ctrl-C and on SIGTERM (not on SIGKILL of the bench: their processes carry the environment
marker ``VIGIE_STACK=<service>@<temporary folder>``, so they can be found).

Results: printed, and written to ``bench/results/security.json`` and ``security.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template
from types import FrameType
from typing import Any, ClassVar

from confluent_kafka.admin import AdminClient, NewTopic
from elasticsearch import Elasticsearch

import deploy.local
from bench.e2e import ceilings
from bench.e2e.workload import Record, classified_documents, records, registry
from deploy.local import procs
from deploy.local.elasticsearch import Elasticsearch as LocalElasticsearch
from deploy.local.errors import StackError
from deploy.local.fetch import Progress
from deploy.local.kafka import Kafka as LocalKafka
from deploy.local.kafka import new_cluster_id
from deploy.local.layout import Layout, cache_dir
from deploy.local.service import Launch, Service
from runtime.elasticsearch import make_client
from runtime.kafka import KafkaConnection
from runtime.settings import REPO_ROOT, load_settings
from schemas.topics import EVENTS_RAW

RESULTS = REPO_ROOT / "bench" / "results"

#: The local stack's configuration templates (``deploy/local``): the plaintext twins are
#: rendered from them, so every setting but security is the shared servers' own.
STACK_FILES = Path(deploy.local.__file__).parent

#: server.properties keys that exist only for TLS, SASL or authorization.
KAFKA_SECURITY_KEYS = ("ssl.", "sasl.", "listener.name.", "authorizer.class.name",
                       "allow.everyone.if.no.acl.found", "super.users")

FIGURES = {
    "kafka_produce": "Kafka produce (confluent-kafka, idempotent, acks=all, lz4)",
    "kafka_consume": "Kafka consume (confluent-kafka, fresh group)",
    "es_bulk": "Elasticsearch bulk (helpers.bulk, until refreshed)",
}


# --- pure parts: configuration rewriting, statistics, the table ------------------------------
def plaintext_kafka_properties(secured: str) -> str:
    """The secured ``server.properties`` without TLS, SASL or authorizer: both listeners
    PLAINTEXT, every other setting (partitions, replication, retention, segment size, group
    delay…) unchanged. Raises if a security setting would survive (a template change)."""
    kept = ["# Throw-away plaintext twin of the local broker (bench/security.py): the stack's",
            "# server.properties without its TLS, SASL and authorizer settings."]
    for line in secured.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key = stripped.split("=", 1)[0].strip()
        if key.startswith(KAFKA_SECURITY_KEYS):
            continue
        if key == "listener.security.protocol.map":
            names = [pair.split(":", 1)[0] for pair in stripped.split("=", 1)[1].split(",")]
            stripped = f"{key}=" + ",".join(f"{name.strip()}:PLAINTEXT" for name in names)
        kept.append(stripped)
    leftover = [line for line in kept[2:] if "SSL" in line.upper() or "SASL" in line.upper()
                or "SCRAM" in line.upper()]
    if leftover:
        raise ValueError(f"security settings left in the plaintext broker: {leftover}")
    return "\n".join(kept) + "\n"


def plaintext_es_yaml(secured: str) -> str:
    """The secured ``elasticsearch.yml`` with every ``xpack.security.*`` setting replaced by
    ``xpack.security.enabled: false`` (no TLS, no authentication); the rest unchanged."""
    kept = [line for line in secured.splitlines()
            if not line.strip().startswith("xpack.security.")]
    kept += ["# Throw-away plaintext twin (bench/security.py): security off.",
             "xpack.security.enabled: false"]
    return "\n".join(kept) + "\n"


def summary(samples: Sequence[float]) -> dict[str, Any]:
    """Median, min, max and count of ``samples`` (throughputs, per second)."""
    return {"median": round(statistics.median(samples), 1), "min": round(min(samples), 1),
            "max": round(max(samples), 1), "n": len(samples),
            "samples": [round(x, 1) for x in samples]}


def paired_ratios(secured: Sequence[float], plaintext: Sequence[float]) -> list[float]:
    """secured / plaintext of each round: both were measured back to back, so a slow
    moment of the machine slows both and cancels out of their ratio."""
    if len(secured) != len(plaintext):
        raise ValueError(f"{len(secured)} secured samples for {len(plaintext)} plaintext ones: "
                         f"rounds must pair")
    return [s / p for s, p in zip(secured, plaintext, strict=True) if p > 0]


def compare(secured: Sequence[float], plaintext: Sequence[float]) -> dict[str, Any]:
    """Both sides' summaries and the ratio secured / plaintext: the median of the per-round
    ratios (the headline), their range, and the ratio of the two medians for reference."""
    ratios = paired_ratios(secured, plaintext)
    ratio = statistics.median(ratios)
    return {
        "secured": summary(secured), "plaintext": summary(plaintext),
        "ratio": round(ratio, 3), "ratio_min": round(min(ratios), 3),
        "ratio_max": round(max(ratios), 3),
        "ratio_of_medians": round(statistics.median(secured) / statistics.median(plaintext), 3),
        "cost_pct": round(100 * (1 - ratio), 1),
    }


def markdown(result: dict[str, Any]) -> str:
    """The table of a result: ceilings secured vs plaintext and their ratio."""
    lines = [
        f"# Cost of TLS+SASL ({result['when']})", "",
        f"{result['records']:,} records (mean {result['record_bytes_mean']} B) per figure and "
        f"side, {result['rounds']} interleaved rounds; medians (min–max). Secured: "
        f"{result['secured']}. Plaintext: {result['plaintext']}.", "",
        "| figure | secured /s | plaintext /s | secured / plaintext |",
        "| --- | --- | --- | --- |",
    ]
    for key, label in FIGURES.items():
        if key == "es_bulk" and result.get("bulk_batch"):
            label = label.replace("helpers.bulk", f"helpers.bulk, batch {result['bulk_batch']}")
        fig = result["figures"].get(key)
        if fig is None:
            lines.append(f"| {label} | – | – | not measured: "
                         f"{result.get('es_not_measured', '?')} |")
            continue
        lines.append(f"| {label} | {_stat(fig['secured'])} | {_stat(fig['plaintext'])} | "
                     f"**{fig['ratio']:.2f}** ({fig['ratio_min']:.2f}–{fig['ratio_max']:.2f})"
                     f"{'' if distinguishable(fig) else ', within noise'} |")
    lines += ["", "Ratio: median of the per-round ratios secured / plaintext (1.00: security "
                  "costs nothing; 0.80: it costs 20 % of the throughput), with their range; "
                  "\"within noise\" when that range holds 1.00, i.e. some round found the "
                  "secured side as fast as the plaintext one or faster."]
    return "\n".join(lines) + "\n"


def distinguishable(fig: dict[str, Any]) -> bool:
    """True when every round puts the ratio on the same side of 1.0: a cost (or a gain) this
    run's noise cannot explain. Otherwise the rounds disagree and the median alone says
    little."""
    return bool(fig["ratio_max"] < 1.0 or fig["ratio_min"] > 1.0)


def _stat(stat: dict[str, Any]) -> str:
    return f"{stat['median']:,.0f} ({stat['min']:,.0f}–{stat['max']:,.0f})"


# --- the throw-away plaintext servers --------------------------------------------------------
def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports the kernel says are free right now (all held open
    together while asking, so none is handed out twice)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


class PlaintextKafka(LocalKafka):
    """The local stack's broker (same jars, JVM flags and server.properties) on other ports,
    in another state folder, with no TLS, no SASL and no authorizer."""

    def __init__(self, layout: Layout, broker_port: int, controller_port: int,
                 heap: str) -> None:
        super().__init__(layout)
        self._broker_port, self._controller_port, self._heap = (broker_port, controller_port,
                                                                 heap)

    @property
    def broker_port(self) -> int:
        return self._broker_port

    @property
    def controller_port(self) -> int:
        return self._controller_port

    @property
    def heap(self) -> str:
        return self._heap

    @property
    def connection(self) -> KafkaConnection:
        return KafkaConnection(bootstrap=self.url)

    def _render(self) -> Path:
        for path in (self.config_dir, self.data_dir, self.logs_dir):
            path.mkdir(parents=True, exist_ok=True)
        values = {"broker_port": self.broker_port, "controller_port": self.controller_port,
                  "log_dirs": self.data_dir, "logs_dir": self.logs_dir}
        # The security placeholders are dropped with their lines.
        unused = dict.fromkeys(("keystore", "truststore", "admin_user", "admin_password",
                                "super_users"), "unused")
        secured = Template((STACK_FILES / "kafka-server.properties").read_text())
        self.server_properties.write_text(
            plaintext_kafka_properties(secured.substitute({**values, **unused})))
        log4j = self.config_dir / "log4j2.properties"
        log4j.write_text(Template((STACK_FILES / "kafka-log4j2.properties").read_text())
                         .substitute(values))
        return log4j

    def prepare(self, progress: Progress) -> Launch:
        jvm = self.java_command(progress)
        out = subprocess.run(
            [*jvm, "kafka.tools.StorageTool", "format", "--config", str(self.server_properties),
             "--cluster-id", new_cluster_id(), "--standalone"],
            capture_output=True, text=True, timeout=180, check=False, stdin=subprocess.DEVNULL)
        if out.returncode != 0:
            raise StackError(f"formatting the plaintext Kafka's storage failed "
                             f"(exit {out.returncode}):\n{(out.stdout + out.stderr)[-2000:]}")
        return Launch(argv=[*jvm, "kafka.Kafka", str(self.server_properties)],
                      env=dict(os.environ), cwd=self.logs_dir)

    def probe(self) -> bool:
        ours = self.cluster_id()
        if ours is None or not procs.port_in_use(self.broker_port):
            return False
        try:
            metadata = self.connection.admin(**{"log_level": 0, "socket.timeout.ms": 3000}
                                             ).list_topics(timeout=3)
        except Exception:  # any failure just means "not answering yet"
            return False
        return bool(metadata.brokers) and metadata.cluster_id == ours


class PlaintextElasticsearch(LocalElasticsearch):
    """The local stack's Elasticsearch (same distribution, same user, same elasticsearch.yml)
    on other ports, in another state folder, with security off and a heap of its own."""

    cluster: ClassVar[str] = "vigie-bench-plaintext"

    def __init__(self, layout: Layout, http_port: int, transport_port: int,
                 heap: str) -> None:
        super().__init__(layout)
        self._http_port, self._transport_port, self._heap = http_port, transport_port, heap

    @property
    def http_port(self) -> int:
        return self._http_port

    @property
    def transport_port(self) -> int:
        return self._transport_port

    @property
    def url(self) -> str:
        return f"http://localhost:{self.http_port}"

    @property
    def log(self) -> Path:
        return self.logs_dir / f"{self.cluster}.log"

    def _render(self, dist: Path) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(dist / "config", self.config_dir, dirs_exist_ok=True)
        values = {"cluster_name": self.cluster, "node_name": f"{self.cluster}-1",
                  "http_port": self.http_port, "transport_port": self.transport_port,
                  "data_dir": self.data_dir, "logs_dir": self.logs_dir}
        secured = Template((STACK_FILES / "elasticsearch.yml").read_text()).substitute(values)
        (self.config_dir / "elasticsearch.yml").write_text(plaintext_es_yaml(secured))
        options = self.config_dir / "jvm.options.d"
        options.mkdir(exist_ok=True)
        (options / "vigie.options").write_text(f"-Xms{self._heap}\n-Xmx{self._heap}\n")

    def _get(self, path: str, timeout: float = 2.0) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=timeout) as resp:
                body: dict[str, Any] = json.load(resp)
                return body
        except (OSError, ValueError):
            return None


@dataclass
class Plaintext:
    """The running throw-away servers (``es`` None when Elasticsearch is not measured)."""

    kafka: PlaintextKafka
    es: PlaintextElasticsearch | None
    es_not_measured: str | None = None


def _stop(svc: Service, grace: float = 20) -> None:
    """SIGTERM every process carrying ``svc``'s marker, SIGKILL what outlives ``grace``."""
    members = procs.marked_pids(svc.mark)
    procs.signal_all(members, signal.SIGTERM)
    left = procs.wait_gone(members, grace)
    procs.signal_all(left + procs.marked_pids(svc.mark), signal.SIGKILL)
    procs.wait_gone(procs.marked_pids(svc.mark), 15)
    for pid in members:
        svc.forget(pid)
    if procs.marked_pids(svc.mark):
        raise StackError(f"the throw-away {svc.name} survives SIGKILL: pids "
                         f"{procs.marked_pids(svc.mark)}")


def _wait(pending: dict[Service, int], timeout: float) -> dict[Service, str]:
    """Wait for each started server to answer; returns why each one that did not failed."""
    failed: dict[Service, str] = {}
    deadline = time.monotonic() + timeout
    while pending:
        for svc, pid in list(pending.items()):
            code = svc.exit_code(pid)
            if code is not None or not svc.is_ours(pid):
                failed[svc] = str(svc.failure(f"exited during start-up (code {code})"))
                del pending[svc]
            elif svc.probe():
                del pending[svc]
        if pending and time.monotonic() > deadline:
            for svc in pending:
                failed[svc] = f"{svc.name} did not answer within {timeout:.0f} s"
            return failed
        time.sleep(0.5)
    return failed


@contextlib.contextmanager
def plaintext_servers(with_es: bool, kafka_heap: str, es_heap: str, timeout: float,
                      say: Callable[[str], None],
                      logs_on_failure: Path) -> Iterator[Plaintext]:
    """Start the throw-away plaintext Kafka (and Elasticsearch) in a temporary folder; stop
    them and delete the folder on the way out, whatever happened. On a failure their logs
    are copied to ``logs_on_failure`` first: the folder that held them is gone after."""
    root = Path(tempfile.mkdtemp(prefix="vigie-bench-plaintext-"))
    root.chmod(0o755)  # as root, Elasticsearch runs as its own user and must traverse it
    layout = Layout(state=root, cache=cache_dir())
    ports = free_ports(4)
    kafka = PlaintextKafka(layout, ports[0], ports[1], kafka_heap)
    es = PlaintextElasticsearch(layout, ports[2], ports[3], es_heap) if with_es else None
    started: list[Service] = []
    try:
        pending: dict[Service, int] = {}
        began = time.monotonic()
        for svc in (es, kafka):  # Elasticsearch first: the slower to start
            if svc is not None:
                pending[svc] = svc.start(say)
                started.append(svc)
        failed = _wait(pending, timeout)
        if kafka in failed:
            raise StackError(failed[kafka])
        say(f"  throw-away plaintext servers up in {time.monotonic() - began:.0f} s: "
            f"Kafka {kafka.url}" + (f", Elasticsearch {es.url}" if es else "") + f" ({root})")
        reason = None
        if es is not None and es in failed:
            reason = f"the throw-away Elasticsearch did not start: {failed[es][:300]}"
            say(f"  {reason}; measuring Kafka only")
            _stop(es)
            es = None
        yield Plaintext(kafka, es, reason)
    except Exception:  # a failure, not Ctrl-C: keep what explains it
        for server in started:
            with contextlib.suppress(OSError):
                shutil.copytree(server.logs_dir, logs_on_failure / server.key,
                                dirs_exist_ok=True)
        if started:
            say(f"  the throw-away servers' logs are kept in {logs_on_failure}")
        raise
    finally:
        for server in started:
            try:
                _stop(server)
            except StackError as exc:  # say it, and still stop the other one
                say(f"  WARNING: {exc}")
        shutil.rmtree(root, ignore_errors=True)
        say(f"  throw-away plaintext servers stopped, {root} deleted")


# --- the measurement -------------------------------------------------------------------------
@dataclass
class Side:
    """One side of the comparison: how the bench reaches its Kafka and Elasticsearch."""

    name: str
    kafka: KafkaConnection
    es: Elasticsearch | None


def measure(sides: Sequence[Side], batch: list[Record], docs: list[tuple[str, str, str]],
            rounds: int, bulk_batch: int, tag: str, say: Callable[[str], None],
            warmups: int = 3) -> dict[str, dict[str, list[float]]]:
    """Each ceiling on each side, ``rounds`` times, alternating sides figure by figure and
    which side goes first from one round to the next (A/B, then B/A…: a side always measured
    second would always find the machine in the state the first left it), after one untimed
    ``warmups`` untimed rounds: a fresh broker creates its offsets topic and
    loads its coordinators on first use, and a fresh JVM compiles its hot paths (the
    throw-away Elasticsearch indexed at half the shared one's rate after one warm-up round,
    climbing round after round, while the shared one had run for hours); returns
    ``{figure: {side: samples}}``. Scratch topics, groups and indices are deleted
    afterwards, even on failure."""
    topic = f"bench.scratch-security-{tag}"
    samples: dict[str, dict[str, list[float]]] = {
        key: {side.name: [] for side in sides} for key in FIGURES}
    admins: dict[str, AdminClient] = {}
    groups: dict[str, list[str]] = {side.name: [] for side in sides}
    try:
        for side in sides:
            admins[side.name] = side.kafka.admin()
            admins[side.name].create_topics([NewTopic(
                topic, EVENTS_RAW.partitions, 1,
                config={"max.message.bytes": str(2 * 1024 * 1024)})])[topic].result()
        for number in range(-warmups, rounds):  # negative: warm-up
            figures: dict[str, dict[str, float]] = {key: {} for key in FIGURES}
            order = list(sides) if number % 2 == 0 else list(reversed(sides))
            for side in order:
                figures["kafka_produce"][side.name] = ceilings.kafka_produce(side.kafka,
                                                                             topic, batch)
            for side in order:
                group = f"bench-security-{tag}-{side.name}-{number + warmups}"
                groups[side.name].append(group)
                figures["kafka_consume"][side.name] = ceilings.kafka_consume(
                    side.kafka, topic, len(batch), group)
            for side in order:
                if side.es is not None:
                    figures["es_bulk"][side.name] = ceilings.es_bulk(
                        side.es, f"bench-scratch-security-{tag}-{side.name}-{number + warmups}",
                        docs, bulk_batch)
            label = (f"warm-up {number + warmups + 1}/{warmups}" if number < 0
                     else f"round {number + 1}/{rounds}")
            say(f"  {label}: "
                + "; ".join(f"{key} " + " / ".join(f"{name} {value:,.0f}"
                                                   for name, value in by_side.items())
                            for key, by_side in figures.items() if by_side))
            if number >= 0:
                for key, by_side in figures.items():
                    for name, value in by_side.items():
                        samples[key][name].append(value)
    finally:
        for name, admin in admins.items():
            with contextlib.suppress(Exception):  # best effort: the broker may be gone
                admin.delete_topics([topic])[topic].result()
            ceilings.delete_groups(admin, groups[name])
    return {key: by_side for key, by_side in samples.items() if all(by_side.values())}


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C, so the throw-away servers are stopped and deleted."""
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Starts and deletes its own plaintext Kafka (and Elasticsearch) on free "
               "ports; the shared stack is only used, never restarted.")
    parser.add_argument("--records", type=int, default=20_000,
                        help="records per figure, side and round (default: as bench.e2e)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--warmups", type=int, default=3,
                        help="untimed rounds first, while the fresh JVMs compile (default 3)")
    parser.add_argument("--bulk-batch", type=int, default=5000,
                        help="Elasticsearch bulk batch size on both sides (default 5000)")
    parser.add_argument("--kafka-only", action="store_true",
                        help="no throw-away Elasticsearch (saves ~1 GiB and its start)")
    parser.add_argument("--kafka-heap", default=None,
                        help="plaintext Kafka heap (default: the stack's, VIGIE_KAFKA_HEAP)")
    parser.add_argument("--es-heap", default=None, help="plaintext Elasticsearch heap "
                        "(default: the stack's, VIGIE_ES_HEAP, so that only security differs; "
                        "1g is enough for 20,000 documents where memory is short)")
    parser.add_argument("--start-timeout", type=float, default=180,
                        help="seconds the throw-away servers get to answer")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _on_sigterm)

    from deploy.local import stack
    from deploy.local.settings import StackSettings

    began = time.monotonic()
    # Only used, never started nor provisioned from here: `make bench` runs `stack up` first.
    down = [st.name for st in stack.status() if not st.answering]
    if down:
        sys.exit(f"the local stack does not answer ({', '.join(down)}): run `vigie stack up`")
    settings = load_settings()
    kafka_heap = args.kafka_heap or StackSettings().kafka_heap
    es_heap = args.es_heap or StackSettings().es_heap
    tag = time.strftime("%Y%m%d%H%M%S")
    say(f"[{_t(began)}] {args.records:,} signed simulator records…")
    reg = registry(settings.home / "bench", 3036, None)
    batch = records(reg, int(time.time()) % 10**6, args.records)
    docs = classified_documents(reg, batch)
    result: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "records": len(batch), "rounds": args.rounds, "warmups": args.warmups,
        "bulk_batch": args.bulk_batch,
        "record_bytes_mean": round(statistics.mean(len(r.value) for r in batch)),
        "document_bytes_mean": round(statistics.mean(len(d[2]) for d in docs)),
        "secured": f"the shared local stack: Kafka {settings.kafka.security_protocol} "
                   f"{settings.kafka.sasl_mechanism or ''} as {settings.kafka.sasl_username} "
                   f"(a super user: the StandardAuthorizer lets it through without an ACL "
                   f"lookup), Elasticsearch {settings.es_url} as {settings.es_username}, "
                   f"heaps Kafka {StackSettings().kafka_heap}, Elasticsearch "
                   f"{StackSettings().es_heap} (as configured)",
    }
    say(f"[{_t(began)}] starting the throw-away plaintext servers…")
    with plaintext_servers(not args.kafka_only, kafka_heap, es_heap, args.start_timeout,
                           say, settings.home / "bench" / f"security-logs-{tag}") as plain:
        result["plaintext"] = (
            f"throw-away KRaft node PLAINTEXT, no authorizer, heap {kafka_heap}; " + (
                f"throw-away Elasticsearch, security off, heap {es_heap}"
                if plain.es else "no Elasticsearch"))
        if plain.es is None:
            result["es_not_measured"] = plain.es_not_measured or (
                "--kafka-only: no throw-away Elasticsearch was started")
        sides = [Side("secured", settings.kafka, None),
                 Side("plaintext", plain.kafka.connection, None)]
        if plain.es is not None:
            # The same client builder (timeouts, no hidden retries) without user, password
            # or CA: only security differs.
            sides[0].es = make_client(settings, request_timeout=120)
            sides[1].es = make_client(settings.model_copy(update={
                "es_url": plain.es.url, "es_username": None, "es_password": None,
                "es_ca_certs": None}), request_timeout=120)
        say(f"[{_t(began)}] {args.warmups} warm-up and {args.rounds} interleaved rounds…")
        samples = measure(sides, batch, docs, args.rounds, args.bulk_batch, tag, say,
                          args.warmups)
    result["figures"] = {key: compare(by_side["secured"], by_side["plaintext"])
                         for key, by_side in samples.items()}
    result["bench_seconds"] = round(time.monotonic() - began)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "security.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    (RESULTS / "security.md").write_text(table)
    print(table)
    say(f"[{_t(began)}] written {RESULTS / 'security.json'}, {RESULTS / 'security.md'}")


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _t(began: float) -> str:
    seconds = int(time.monotonic() - began)
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


if __name__ == "__main__":
    main()
