"""The Faust processor: ``events.raw`` → ``events.classified`` | ``detections`` | ``events.dlq``.

Delivery guarantee: records are taken in batches; every output of a batch is sent (through
librdkafka, ``processors.outputs``) and its broker acknowledgement awaited before the loop
moves on, and Faust only commits the offsets of records whose iteration finished, never over
one it skipped (``processors.offsets``). A
crash therefore replays records whose outputs may already be in Kafka; ids are deterministic,
so the sink's overwrite makes that replay harmless. Faust's own exactly-once mode is not used:
it has known duplicate and stuck-recovery bugs after kill -9.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

import faust
from pydantic_core import from_json

from processors import offsets
from processors.brokers import broker_credentials, broker_urls
from processors.classify import Classifier, PassThrough, SigmaClassifier
from processors.outputs import Output, Outputs
from processors.validate import Coordinates, Refused, Validator, dead_letter
from runtime import metrics
from runtime.registry import load_registry
from runtime.settings import Settings
from schemas.deadletter import Reason
from schemas.topics import DETECTIONS, EVENTS_CLASSIFIED, EVENTS_DLQ, EVENTS_RAW, Topic

log = logging.getLogger(__name__)

BATCH = 500
BATCH_WITHIN_S = 0.5


def create_app(settings: Settings, classifier: Classifier | None = None) -> faust.App:
    """Build the Faust app and its agent for ``settings``."""
    validator = Validator(load_registry(settings.registry),
                          timedelta(seconds=settings.max_clock_skew_s))
    classifier = classifier or PassThrough()
    verifier = None
    if settings.require_signatures:
        from processors.verify import Verifier
        from runtime.agents_registry import load_agents

        verifier = Verifier(load_agents(settings.agents_registry))
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
        topic_partitions=EVENTS_RAW.partitions,
        producer_acks=-1,
        producer_compression_type="lz4",
        producer_max_request_size=8 * 1024 * 1024,
        consumer_max_fetch_size=8 * 1024 * 1024,
        broker_commit_every=5000,
        broker_commit_interval=2.0,
        stream_buffer_maxsize=4096,
    )
    # Faust could commit over a record it skipped: hold such commits and re-read instead.
    offsets.install(app)
    raw = app.topic(EVENTS_RAW.name, key_type=bytes, value_type=bytes)
    classified = app.topic(EVENTS_CLASSIFIED.name, key_type=bytes, value_type=bytes)
    detections = app.topic(DETECTIONS.name, key_type=bytes, value_type=bytes)
    dlq = app.topic(EVENTS_DLQ.name, key_type=bytes, value_type=bytes)

    seen = metrics.EVENTS_IN.labels("processor", EVENTS_RAW.name)
    out_events = metrics.EVENTS_OUT.labels("processor", EVENTS_CLASSIFIED.name)
    out_detections = metrics.EVENTS_OUT.labels("processor", DETECTIONS.name)
    batch_seconds = metrics.BATCH_SECONDS.labels("processor")

    # Outputs leave through librdkafka, acknowledged before their inputs count as done.
    outputs_producer = Outputs(settings.kafka)
    deliver = outputs_producer.deliver

    @app.on_before_shutdown.connect
    async def flush_outputs(app: faust.App, **_: object) -> None:
        """After the consumer stopped, before Faust's own producer flush: send what is left."""
        await asyncio.get_running_loop().run_in_executor(None, outputs_producer.close)

    # Sigma correlation rules: base-rule matches they count go to their own topic, keyed by
    # establishment like detections, and come back as detections when a window fires.
    correlation_inputs = None
    correlations = getattr(classifier, "correlations", None)
    if correlations:
        from processors.detection.correlation.stages import register as register_sigma

        correlation_inputs = register_sigma(app, correlations, deliver)

    def refuse(event: faust.EventT, refused: Refused) -> Output:
        message = event.message
        where = Coordinates(message.topic, message.partition, message.offset, event.key)
        letter = dead_letter(event.value, where, refused)
        metrics.DEAD_LETTERS.labels("processor", refused.reason.value).inc()
        key = (refused.establishment_id or "").encode() or event.key
        return (dlq, key, letter.to_json_bytes())

    def handle(event: faust.EventT) -> list[Output]:
        """Validate, verify and classify one raw record; its outputs."""
        try:
            ok = validator.validate(event.value, event.key)
            if verifier is not None:
                verifier.verify(event.value, event.message.headers, ok.organization.id,
                                agent_id=ok.agent.id if ok.agent else None)
        except Refused as refused:
            return [refuse(event, refused)]
        # The Sigma engine reads the raw document (the same bytes were validated just above);
        # pydantic-core's parser gives what json.loads gives, in under half the time.
        doc = from_json(event.value) if ok.winlog is not None else None
        verdict = classifier.classify(ok, doc)
        key = ok.organization.id.encode()
        outputs: list[Output] = [(detections, key, d.to_json_bytes()) for d in verdict.detections]
        out_detections.inc(len(verdict.detections))
        if correlation_inputs is not None:
            outputs += [(correlation_inputs, key, sig.to_json_bytes()) for sig in verdict.signals]
        outputs.append((classified, key, verdict.event.to_json_bytes()))
        out_events.inc()
        return outputs

    @app.agent(raw)
    async def process(stream: faust.StreamT[bytes]) -> None:
        async for batch in stream.take_events(BATCH, within=BATCH_WITHIN_S):
            began = time.perf_counter()
            outputs: list[Output] = []
            for event in batch:
                seen.inc()
                try:
                    outputs += handle(event)
                except Exception as exc:
                    # A bug must not lose the record nor crash-loop the agent (Faust would ack
                    # the batch anyway): keep it as a dead letter an engineer can replay.
                    log.exception("processing failed at %s[%s]@%s", event.message.topic,
                                  event.message.partition, event.message.offset)
                    outputs.append(refuse(event, Refused(Reason.PROCESSING_ERROR,
                                                         f"processing failed: {exc!r}")))
            # The batch counts as done (and committable) only once Kafka has every output.
            await deliver(outputs)
            batch_seconds.observe(time.perf_counter() - began)

    if settings.incidents_enabled:
        from processors.incidents.config import load_scoring
        from processors.incidents.stages import register

        register(app, load_scoring(settings.scoring), deliver,
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

    ensure_topics(settings.kafka)
    metrics.serve_metrics("processor", settings.metrics_port)
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
