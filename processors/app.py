"""The Faust processor: ``events.raw`` → ``events.classified`` | ``detections`` | ``events.dlq``.

Delivery guarantee: records are taken in batches; every output of a batch is sent (through
librdkafka, ``processors.outputs``) and its broker acknowledgement awaited before the loop
moves on, and Faust only commits the offsets of records whose iteration finished, never over
one it skipped (``processors.offsets``). A
crash therefore replays records whose outputs may already be in Kafka; ids are deterministic,
so the sink's overwrite makes that replay harmless. Faust's own exactly-once mode is not used:
it has known duplicate and stuck-recovery bugs after kill -9.

What happens to one record is ``ClassifyStage`` (``processors.classify``), pure and tested
without Faust; this module builds the app and wires the stages to topics and agents.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, cast

import faust

from processors import offsets
from processors.brokers import broker_credentials, broker_urls, read_committed_transport
from processors.classify import (
    Classifier,
    ClassifyStage,
    Judged,
    PassThrough,
    Rejected,
    SigmaClassifier,
)
from processors.outputs import Output, Outputs, document
from processors.replay import EstablishmentSequences
from processors.validate import Coordinates, Validator
from runtime import metrics
from runtime.registry import load_registry
from runtime.settings import Settings
from schemas.topics import (
    DETECTIONS,
    EVENTS_CLASSIFIED,
    EVENTS_DLQ,
    EVENTS_RAW,
    PROCESSOR_TOPICS,
    Topic,
)

log = logging.getLogger(__name__)

#: Records (envelopes, mostly: tens of events each) taken at once, and how long a batch waits
#: to fill: the wait is latency every event pays at low load (searchable within 2 s is the
#: aim), while a busy stream fills batches long before it.
BATCH = 500
BATCH_WITHIN_S = 0.1
#: Outputs sent (and acknowledged) at once: a batch of envelopes holds thousands of events,
#: whose outputs leave in runs of this size rather than all held in memory until its end.
DELIVER_EVERY = 5000

Deliver = Callable[[Sequence[Output]], Awaitable[None]]


def faust_app(settings: Settings) -> faust.App:
    """The Faust app itself: broker, serialisation, local state and client tuning."""
    faust_home = settings.home / "faust"
    faust_home.mkdir(parents=True, exist_ok=True)  # Faust makes only the last level
    app = faust.App(
        settings.processor_app_id,
        broker=broker_urls(settings.kafka),
        broker_credentials=broker_credentials(settings.kafka),
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        # Faust's local state (table checkpoints) goes with the rest of Vigie's state, not
        # into whatever directory the worker was started from.
        datadir=str(faust_home / settings.processor_app_id),
        topic_disable_leader=True,
        # Every topic the worker uses exists before it starts (``run_processor`` checks the
        # pipeline's and creates the tables' changelogs): Faust's own declaration asks the
        # controller again for each, and a broker gone at that moment killed the worker
        # (NodeNotReadyError from ``create_topic``, seen when Kafka restarted as a SIGKILLed
        # processor came back).
        topic_allow_declare=False,
        topic_partitions=EVENTS_RAW.partitions,
        producer_acks=-1,
        producer_compression_type="lz4",
        producer_max_request_size=8 * 1024 * 1024,
        consumer_max_fetch_size=8 * 1024 * 1024,
        broker_commit_every=5000,
        broker_commit_interval=2.0,
        stream_buffer_maxsize=4096,
    )
    app.transport = read_committed_transport(app)  # aborted agent transactions stay unseen
    return app


def classify_stage(settings: Settings, classifier: Classifier) -> ClassifyStage:
    """Validation against the registry, signature checks against the live agents registry
    when required (``processors.trust``: read to its end before the worker starts, then
    followed), ``classifier``."""
    validator = Validator(load_registry(settings.registry),
                          timedelta(seconds=settings.max_clock_skew_s),
                          timedelta(days=settings.max_event_age_days))
    from processors.trust import agents_verifier

    return ClassifyStage(validator, classifier, agents_verifier(settings))


class RecordPartitionedTable(faust.Table):
    """A table whose writes go to the changelog partition named by ``partition``, set by the
    caller to the partition of the record being handled. Faust takes it from its "current
    event", which in a batch (``take_events``) is the batch's last record, whatever partition
    the record being handled came from."""

    partition: int | None = None

    def partition_for_key(self, key: Any) -> int | None:
        return self.partition


def sequences_table(app: faust.App) -> RecordPartitionedTable:
    """``agent-sequences``: establishment id (the key of ``events.raw``) → its agents'
    numbering (``processors.replay``), changelogged like the other tables."""
    schema: faust.Schema = faust.Schema(key_type=str, key_serializer="raw",
                                        value_serializer="json")
    table = RecordPartitionedTable(app, name="agent-sequences", default=None,
                                   beacon=app.tables.beacon, partitions=EVENTS_RAW.partitions,
                                   schema=schema,
                                   help="Replay check: each agent's highest sequence")
    app.tables.add(table)
    return table


class _Processing:
    """The ``events.raw`` agent: batches of records through ``ClassifyStage``, their outputs
    delivered (and acknowledged) before the batch counts as done. No decision is taken here."""

    def __init__(self, app: faust.App, stage: ClassifyStage, deliver: Deliver,
                 correlation_inputs: faust.TopicT | None) -> None:
        self.stage = stage
        # Only signed sequences mean anything: no replay check without verification.
        self.sequences = sequences_table(app) if stage.verifier is not None else None
        # The batch's new replay-table entries (establishment → (partition, entry)): read
        # before the table by the batch's next records, written once per batch.
        self._pending: dict[str, tuple[int, EstablishmentSequences]] = {}
        self.deliver = deliver
        self.correlation_inputs = correlation_inputs
        self.raw = app.topic(EVENTS_RAW.name, key_type=bytes, value_type=bytes)
        self.classified = app.topic(EVENTS_CLASSIFIED.name, key_type=bytes, value_type=bytes)
        self.detections = app.topic(DETECTIONS.name, key_type=bytes, value_type=bytes)
        self.dlq = app.topic(EVENTS_DLQ.name, key_type=bytes, value_type=bytes)
        self.seen = metrics.EVENTS_IN.labels("processor", EVENTS_RAW.name)
        self.out_events = metrics.EVENTS_OUT.labels("processor", EVENTS_CLASSIFIED.name)
        self.out_detections = metrics.EVENTS_OUT.labels("processor", DETECTIONS.name)
        self.batch_seconds = metrics.BATCH_SECONDS.labels("processor")

    def outputs_of(self, judged: Judged, partition: int, outputs: list[Output]) -> None:
        """Append the outputs of one record read from ``partition`` to ``outputs``; its
        replay-table entry is kept for the batch's write (the establishment's next record in
        the batch already sees it)."""
        events = 0
        for result in judged.results:
            if isinstance(result, Rejected):
                metrics.DEAD_LETTERS.labels("processor", result.letter.reason.value).inc()
                outputs.append(document(self.dlq, result.key, result.letter))
                continue
            verdict, key = result.verdict, result.key
            if verdict.detections:
                outputs += [document(self.detections, key, d) for d in verdict.detections]
                self.out_detections.inc(len(verdict.detections))
            if verdict.signals and self.correlation_inputs is not None:
                outputs += [Output(self.correlation_inputs, key, s.to_json_bytes())
                            for s in verdict.signals]
            outputs.append(Output(self.classified, key, verdict.document, verdict.headers))
            events += 1
        self.out_events.inc(events)
        if judged.sequences is not None and judged.establishment_id is not None:
            self._pending[judged.establishment_id] = (partition, judged.sequences)

    def handle(self, event: faust.EventT[bytes], outputs: list[Output]) -> None:
        """Outputs of one raw record (one event or an envelope of many), appended to
        ``outputs``; a bug must not lose the record nor crash-loop the agent (Faust would
        ack the batch anyway): it becomes a dead letter an engineer can replay."""
        message = event.message
        where = Coordinates(message.topic, message.partition, message.offset, event.key)
        lookup = self.agent_sequences if self.sequences is not None else None
        try:
            judged = self.stage.handle(event.value, where, message.headers, lookup)
        except Exception as exc:
            log.exception("processing failed at %s[%s]@%s", message.topic, message.partition,
                          message.offset)
            judged = Judged([ClassifyStage.failed(event.value, where, exc)])
        self.seen.inc(len(judged.results))
        self.outputs_of(judged, message.partition, outputs)

    def agent_sequences(self, establishment_id: str) -> EstablishmentSequences | None:
        """The establishment's replay-table entry, as this batch left it so far."""
        pending = self._pending.get(establishment_id)
        if pending is not None:
            return pending[1]
        return self.sequences.get(establishment_id) if self.sequences is not None else None

    def store_sequences(self) -> None:
        """Write the batch's replay-table entries, each to the changelog partition of the
        records it came from. Before the outputs are delivered: after a crash, the records
        read again are at or before the offsets stored, and are accepted again."""
        if self.sequences is not None:
            for org, (partition, entry) in self._pending.items():
                self.sequences.partition = partition
                self.sequences[org] = entry
        self._pending.clear()

    async def process(self, stream: faust.StreamT[bytes]) -> None:
        # ``take_events`` is on Faust's Stream, not on the StreamT protocol agents are typed with.
        batches = cast(faust.Stream[bytes], stream).take_events(BATCH, within=BATCH_WITHIN_S)
        async for batch in batches:
            began = time.perf_counter()
            outputs: list[Output] = []
            for event in batch:
                self.handle(event, outputs)
                if len(outputs) >= DELIVER_EVERY:
                    self.store_sequences()
                    await self.deliver(outputs)
                    outputs = []
            self.store_sequences()
            # The batch counts as done (and committable) only once Kafka has every output.
            await self.deliver(outputs)
            self.batch_seconds.observe(time.perf_counter() - began)


def _register_correlations(app: faust.App, classifier: Classifier,
                           deliver: Deliver) -> faust.TopicT | None:
    """Sigma correlation rules: base-rule matches they count go to their own topic, keyed by
    establishment like detections, and come back as detections when a window fires."""
    correlations = getattr(classifier, "correlations", None)
    if not correlations:
        return None
    from processors.detection.correlation.stages import register as register_sigma

    return register_sigma(app, correlations, deliver)


def create_app(settings: Settings, classifier: Classifier | None = None) -> faust.App:
    """Build the Faust app and its agents for ``settings``."""
    classifier = classifier or PassThrough()
    stage = classify_stage(settings, classifier)
    app = faust_app(settings)
    # Faust could commit over a record it skipped: hold such commits and re-read instead.
    offsets.install(app)
    # Outputs leave through librdkafka, acknowledged before their inputs count as done.
    outputs_producer = Outputs(settings.kafka)

    @app.on_before_shutdown.connect
    async def flush_outputs(*_: Any, **__: Any) -> None:  # (app, signal=...): unused
        """After the consumer stopped, before Faust's own producer flush: send what is left."""
        await asyncio.get_running_loop().run_in_executor(None, outputs_producer.close)

    correlation_inputs = _register_correlations(app, classifier, outputs_producer.deliver)
    processing = _Processing(app, stage, outputs_producer.deliver, correlation_inputs)
    app.agent(processing.raw, name="process")(processing.process)
    if settings.incidents_enabled:
        from processors.incidents.config import load_scoring
        from processors.incidents.stages import register

        register(app, load_scoring(settings.scoring), outputs_producer.deliver,
                 tick_seconds=settings.incident_tick_s)
    return app


def default_classifier(settings: Settings) -> Classifier:
    """The Sigma engine over the configured rule folders, or no detection if disabled."""
    if not settings.detection_enabled:
        return PassThrough()
    from processors.detection.engine import Engine

    began = time.monotonic()
    engine = Engine.from_paths(settings.rule_dirs or None)
    report = engine.report()
    log.info("Sigma engine: %d rules compiled, %d skipped (see `vigie rules check`), %.1f s",
             report.rules_loaded, len(report.skipped), time.monotonic() - began)
    return SigmaClassifier(engine)


def run_processor(settings: Settings, classifier: Classifier | None = None) -> None:
    """Run a worker until SIGTERM/SIGINT (Faust's worker handles the graceful stop); SIGHUP
    reloads the Sigma rules."""
    from runtime.topics import ensure_topics

    ensure_topics(settings.kafka, PROCESSOR_TOPICS)
    metrics.serve_metrics("processor", settings.metrics_port, host=settings.metrics_host,
                          tls=settings.metrics_tls)
    classifier = classifier or default_classifier(settings)
    if isinstance(classifier, SigmaClassifier):
        from processors.reload import install_rule_reload

        install_rule_reload(classifier, settings.rule_dirs or None)
    app = create_app(settings, classifier)
    # Faust creates its tables' changelog topics lazily, and until its consumer's metadata
    # sees them every table write fails (PartitionsMismatch: "0 partitions"): on a fresh
    # deployment the first incidents would be lost. Create them before the worker starts.
    ensure_topics(settings.kafka, tuple(
        Topic(table.changelog_topic.get_topic_name(), table.partitions or EVENTS_RAW.partitions,
              {"cleanup.policy": "compact"}, f"changelog of Faust table {table.name}")
        for table in app.tables.values()))
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), quiet=True)
    worker.execute_from_commandline()
