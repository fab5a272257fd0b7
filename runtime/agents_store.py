"""``vigie agents add|revoke|import``: a change checked against the rules, then written.

Two places hold a registry: the live topic every processor follows (:class:`TopicStore`, what
the commands change by default) and a file (:class:`FileStore`, ``--file``), the import/export
format, which an admin can prepare offline and load with ``vigie agents import``. Both get
the same rules (:mod:`runtime.agents_registry`); the topic also journals each change on the
audit topic.
"""

from __future__ import annotations

import getpass
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from runtime.agents_registry import (
    AgentsRegistryError,
    enrolment,
    import_changes,
    load_agents,
    revocation,
    save_agents,
)
from runtime.kafka import KafkaConnection
from schemas.enrolment import AgentChange, AgentEntry
from schemas.topics import AGENTS, AGENTS_AUDIT


class AgentsStore(Protocol):
    """Where a registry is read from and changes are written to."""

    @property
    def where(self) -> str:
        """Named in errors: the file, or the topic."""
        ...

    def entries(self) -> dict[str, AgentEntry]:
        ...

    def write(self, changes: list[AgentChange]) -> None:
        ...


class FileStore:
    """A registry file (JSON lines or YAML); none yet means an empty registry."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def where(self) -> str:
        return str(self.path)

    def entries(self) -> dict[str, AgentEntry]:
        return load_agents(self.path) if self.path.exists() else {}

    def write(self, changes: list[AgentChange]) -> None:
        agents = self.entries()
        agents.update((c.agent_id, c.entry) for c in changes)
        save_agents(self.path, agents.values())


class TopicStore:
    """The live registry: the compacted topic, each change journaled on the audit topic."""

    def __init__(self, kafka: KafkaConnection) -> None:
        self.kafka = kafka

    @property
    def where(self) -> str:
        return f"topic {AGENTS.name}"

    def entries(self) -> dict[str, AgentEntry]:
        from runtime.agents_topic import read_entries

        return read_entries(self.kafka)

    def write(self, changes: list[AgentChange]) -> None:
        from runtime.agents_topic import publish
        from runtime.topics import ensure_topics

        ensure_topics(self.kafka, (AGENTS, AGENTS_AUDIT))  # the first change on a cluster
        publish(self.kafka, changes)


def default_actor() -> str:
    """Who makes a change when the command does not say: the OS user on this host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _checked(store: AgentsStore, error: AgentsRegistryError) -> AgentsRegistryError:
    return error if error.source else AgentsRegistryError(error.message, source=store.where)


def enroll(store: AgentsStore, agent_id: str, establishment_id: str, public_key: str, *,
           actor: str, reason: str,
           before_write: Callable[[AgentEntry], None] | None = None) -> AgentEntry:
    """Enroll an agent, or say which rule refuses it. ``before_write`` runs once the rules
    accept the entry and before it is written (``vigie agents add`` creates the agent's Kafka
    credential there: a refused enrolment creates none)."""
    try:
        change = enrolment(store.entries(), agent_id, establishment_id, public_key,
                           actor=actor, reason=reason, at=datetime.now(UTC))
    except AgentsRegistryError as exc:
        raise _checked(store, exc) from None
    if before_write is not None:
        before_write(change.entry)
    store.write([change])
    return change.entry


def revoke(store: AgentsStore, agent_id: str, *, actor: str, reason: str) -> AgentEntry:
    """Revoke an agent for good."""
    try:
        change = revocation(store.entries(), agent_id, actor=actor, reason=reason,
                            at=datetime.now(UTC))
    except AgentsRegistryError as exc:
        raise _checked(store, exc) from None
    store.write([change])
    return change.entry


def import_file(store: AgentsStore, path: Path, *, actor: str,
                reason: str) -> list[AgentChange]:
    """Load a registry file into ``store`` (all or nothing); returns the changes made."""
    entries = load_agents(path)
    try:
        changes = import_changes(store.entries(), entries.values(), actor=actor, reason=reason,
                                 at=datetime.now(UTC))
    except AgentsRegistryError as exc:
        raise AgentsRegistryError(f"{exc.source}: {exc.message}" if exc.source else exc.message,
                                  source=str(path)) from None
    store.write(changes)
    return changes
