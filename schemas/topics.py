"""Kafka topics of the pipeline: the names every producer, processor and sink agree on.

Spelled here once; everybody else imports them. Partition counts are the local defaults and
the unit of parallelism: raw events are keyed by establishment, so one establishment's story
stays ordered in one partition, and more partitions allow more processor workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Topic:
    """A topic and the configuration it is created with."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    description: str = ""


_WEEK_MS = str(7 * 24 * 3600 * 1000)
_MAX_MESSAGE = str(2 * 1024 * 1024)

EVENTS_RAW = Topic(
    "events.raw",
    6,
    {"retention.ms": _WEEK_MS, "max.message.bytes": _MAX_MESSAGE},
    "Signed events as agents send them, keyed by establishment (FINESS) id.",
)
EVENTS_CLASSIFIED = Topic(
    "events.classified",
    6,
    {"retention.ms": _WEEK_MS, "max.message.bytes": _MAX_MESSAGE},
    "Validated events, enriched from the registry, with their detections' ids and category.",
)
DETECTIONS = Topic(
    "detections",
    6,
    {"retention.ms": _WEEK_MS},
    "One record per Sigma rule match, keyed by establishment id.",
)
INCIDENTS = Topic(
    "incidents",
    6,
    {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"},
    "Latest state of each incident, keyed by incident id (compacted).",
)
ALERTS = Topic(
    "alerts",
    3,
    {"retention.ms": _WEEK_MS},
    "Alert notifications derived from incidents, for Alertmanager.",
)
EVENTS_DLQ = Topic(
    "events.dlq",
    3,
    {"retention.ms": str(30 * 24 * 3600 * 1000), "max.message.bytes": str(4 * 1024 * 1024)},
    "Records refused by a stage, with the reason and the original bytes.",
)

# Internal topics of the correlation stage (not for consumers outside the processor).
INCIDENT_TICKS = Topic(
    "vigie.incident-ticks",
    DETECTIONS.partitions,
    {"retention.ms": str(3600 * 1000)},
    "Wake-ups keyed by establishment, co-partitioned with detections: resolve stale incidents.",
)
INDICATORS = Topic(
    "vigie.indicators",
    6,
    {"retention.ms": _WEEK_MS},
    "Indicator sightings keyed by indicator: the repartition that lets campaigns be seen.",
)
CORRELATION_INPUTS = Topic(
    "vigie.correlation-inputs",
    DETECTIONS.partitions,
    {"retention.ms": _WEEK_MS},
    "Matches of rules that Sigma correlation rules count (published or not), keyed by "
    "establishment, co-partitioned with detections: the input of the correlation windows.",
)

#: Topics written in Kafka transactions (by the hospital agents, see producers/agent/ship.py):
#: their offsets have gaps (commit and abort markers, aborted records) that read_committed
#: consumers never see.
TRANSACTIONAL_TOPICS: frozenset[str] = frozenset({EVENTS_RAW.name})

# Never written: the agents' shipping progress lives in its consumer-group offsets only.
AGENT_PROGRESS = Topic(
    "vigie.agent-progress",
    1,
    {"retention.ms": str(3600 * 1000)},
    "Always empty. Each agent commits its spool position as the offset of its own group "
    "(vigie-agent-<agent id>) on partition 0, in the same transaction as the records it ships "
    "to events.raw: after a crash it asks for that offset instead of reading events.raw.",
)
# The agents registries (runtime.agents_registry): who may sign events.raw records.
AGENTS = Topic(
    "vigie.agents",
    1,
    {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"},
    "Enrolled agents (production trust), keyed by agent id, value an AgentEntry (JSON), "
    "compacted: the latest entry of each agent. Every processor worker follows it.",
)
AGENTS_AUDIT = Topic(
    "vigie.agents.audit",
    1,
    {"retention.ms": "-1"},
    "Every change to the agents registry (AgentChange: who, when, why), kept forever.",
)
AGENTS_SIMULATED = Topic(
    "vigie.agents.simulated",
    1,
    {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"},
    "Simulated agents (keys derived from a public seed), written by the simulator; trusted "
    "only by a processor in demo mode, never in production.",
)

ENROLMENT_TOKENS = Topic(
    "vigie.enrolment-tokens",
    1,
    {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"},
    "One-time enrolment tokens (schemas.enrolment_api.EnrolmentToken), keyed by the token's "
    "SHA-256, never the token: issued, claimed, used. One partition: the first claim in the "
    "log wins, whichever enrolment server wrote it.",
)

ALL_TOPICS: tuple[Topic, ...] = (
    EVENTS_RAW,
    EVENTS_CLASSIFIED,
    DETECTIONS,
    INCIDENTS,
    ALERTS,
    EVENTS_DLQ,
    INCIDENT_TICKS,
    INDICATORS,
    CORRELATION_INPUTS,
    AGENT_PROGRESS,
    AGENTS,
    AGENTS_AUDIT,
    AGENTS_SIMULATED,
    ENROLMENT_TOKENS,
)

#: What the processor reads or writes (its principal can see only these: it checks, and never
#: creates, them at start; Faust's changelogs are created from the app's tables).
PROCESSOR_TOPICS: tuple[Topic, ...] = (
    EVENTS_RAW, EVENTS_CLASSIFIED, DETECTIONS, INCIDENTS, ALERTS, EVENTS_DLQ, INCIDENT_TICKS,
    INDICATORS, CORRELATION_INPUTS, AGENTS, AGENTS_SIMULATED,
)
