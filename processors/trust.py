"""What the processor trusts: the agents registry it follows live, demo mode, signatures off.

Production trust is the registry topic ``vigie.agents`` only. In demo mode (``demo_mode:
true``, ``vigie process --demo``) the simulated agents of ``vigie.agents.simulated`` are
trusted too (their keys derive from a public seed: anyone can sign as them), so the process
says so loudly: a warning at start and the ``vigie_demo_mode`` gauge at 1. A production entry
always wins over a simulated one of the same agent id.

With ``require_signatures: false`` (which the settings refuse outside demo mode) nothing is
verified; a warning is logged at start and every minute for as long as the process runs, so
no one mistakes such a worker for a protected one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from processors.verify import Verifier
from runtime import metrics
from runtime.agents_registry import AgentsState
from runtime.agents_topic import AgentsFollower
from runtime.settings import Settings
from schemas.enrolment import AgentEntry
from schemas.topics import AGENTS, AGENTS_SIMULATED

log = logging.getLogger(__name__)

#: How often a worker without signature checks says so again.
SIGNATURES_OFF_WARNING_S = 60.0


class TrustedAgents:
    """The production registry's trusted agents, then the simulated ones, merged into one
    plain dict (``view``) that the follower thread keeps current: in demo mode too, the
    Verifier's per-record lookup is one dict ``get``. A production entry always wins."""

    def __init__(self, production: AgentsState, simulated: AgentsState) -> None:
        self.production = production
        self.simulated = simulated
        self.view: dict[str, AgentEntry] = {}
        for agent_id in [*production.trusted, *simulated.trusted]:
            self.refresh(agent_id)
        production.listener = simulated.listener = self.refresh

    def refresh(self, agent_id: str) -> None:
        entry = self.production.trusted.get(agent_id)
        if entry is None:
            entry = self.simulated.trusted.get(agent_id)
        if entry is None:
            self.view.pop(agent_id, None)
        else:
            self.view[agent_id] = entry


def _warn_signatures_off(stop: threading.Event) -> None:
    while not stop.wait(SIGNATURES_OFF_WARNING_S):
        log.warning("signature verification is OFF (require_signatures=false, demo mode): "
                    "any host that reaches Kafka can write in any establishment's name")


def announce(settings: Settings) -> threading.Event:
    """The warnings and gauges of demo mode and of signatures off; setting the returned event
    stops the repeated warning (the processor never does: it lasts as long as the risk)."""
    stop = threading.Event()
    metrics.DEMO_MODE.set(1 if settings.demo_mode else 0)
    metrics.SIGNATURES_REQUIRED.set(1 if settings.require_signatures else 0)
    if settings.demo_mode:
        log.warning("DEMO MODE: simulated agents (topic %s, keys derived from a public seed) "
                    "are trusted; never run a production processor like this",
                    AGENTS_SIMULATED.name)
    if not settings.require_signatures:
        log.warning("signature verification is OFF (require_signatures=false, demo mode): "
                    "any host that reaches Kafka can write in any establishment's name")
        threading.Thread(target=_warn_signatures_off, args=(stop,),
                         name="signatures-off-warning", daemon=True).start()
    return stop


def follow_agents(settings: Settings, timeout: float = 60.0
                  ) -> tuple[Mapping[str, AgentEntry], AgentsFollower]:
    """Read the registry (and, in demo mode, the simulated one) to its end, then keep
    following it in the background; returns what the Verifier looks up and the follower."""
    production = AgentsState("production")
    simulated = AgentsState("simulated") if settings.demo_mode else None
    states = [(AGENTS, production)]
    if simulated is not None:
        states.append((AGENTS_SIMULATED, simulated))

    def gauges() -> None:
        for name, state in (("production", production), ("simulated", simulated)):
            if state is not None:
                for status, count in state.counts().items():
                    metrics.AGENTS.labels(name, status).set(count)

    # Merged as the records arrive, from the very first one read.
    merged = TrustedAgents(production, simulated) if simulated is not None else None
    follower = AgentsFollower(settings.kafka, states, on_change=gauges).start(timeout)
    counts = production.counts()
    log.info("agents registry %s: %d active, %d revoked; following it for changes",
             AGENTS.name, counts["active"], counts["revoked"])
    if simulated is not None:
        log.warning("demo mode: %d simulated agents trusted from %s",
                    simulated.counts()["active"], AGENTS_SIMULATED.name)
    return (merged.view if merged is not None else production.trusted), follower


def agents_verifier(settings: Settings) -> Verifier | None:
    """The processor's Verifier over the live registry, or None when signatures are off."""
    announce(settings)
    if not settings.require_signatures:
        return None
    trusted, _follower = follow_agents(settings)
    registry = f"the agents registry ({AGENTS.name}"
    registry += f", nor {AGENTS_SIMULATED.name}: demo mode)" if settings.demo_mode else ")"
    return Verifier(trusted, registry)
