"""The rules of the national agents registry, and its file format (import/export).

Where the registry lives (a compacted Kafka topic every processor worker follows) is
:mod:`runtime.agents_topic`; this module is the pure logic both the writers and the readers
apply, so that it is tested without Kafka:

- **one key, one agent**: a public key already enrolled under another agent id is refused,
  with that agent named (a key shared by two agents would let one establishment's server sign
  as another's);
- **revocations are permanent**: a revoked agent id is never enrolled again, and neither is a
  revoked key (a stolen key stays stolen); the replacement server enrolls a new key under a
  new id;
- **every change says who, when and why** (:class:`schemas.enrolment.AgentChange`).

Writers (``vigie agents add|revoke|import``) refuse a change that breaks a rule
(:func:`enrolment`, :func:`revocation`, :func:`import_changes`). Readers fold whatever the
topic holds with :class:`AgentsState`, which enforces the rules again, failing closed: someone
writing the topic behind the CLI's back cannot re-activate a revoked agent on a running worker
nor get a shared key trusted.

The file format (JSON lines, or a YAML list for ``.yaml``/``.yml``) is what deployments kept
before the registry moved to Kafka: ``vigie agents import FILE`` loads one, ``vigie agents
export FILE`` writes one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path

import yaml
from pydantic import ValidationError

from runtime.errors import DataError, InputMissing
from schemas.enrolment import AgentAction, AgentChange, AgentEntry, AgentStatus

log = logging.getLogger(__name__)


class AgentsRegistryError(DataError):
    """The agents registry (file or topic) is malformed (with where), or a change to it breaks
    a rule (enrolling an enrolled agent or key, re-adding a revoked one, revoking an unknown
    one)."""


class AgentsRegistryMissing(InputMissing, AgentsRegistryError):
    """No agents registry file where the command says."""


# ---------------------------------------------------------------- the rules (writers)
def _when(entry: AgentEntry) -> str:
    return entry.revoked_at.isoformat() if entry.revoked_at else "an unknown date"


def _why(entry: AgentEntry) -> str:
    return f" ({entry.revoked_reason})" if entry.revoked_reason else ""


def key_holders(agents: Mapping[str, AgentEntry], public_key: str) -> list[AgentEntry]:
    """Entries enrolled with ``public_key``, revoked ones included."""
    return [e for e in agents.values() if e.public_key == public_key]


def check_enrolment(agents: Mapping[str, AgentEntry], entry: AgentEntry) -> None:
    """Refuse ``entry`` if it breaks a rule against ``agents`` (the registry as it is)."""
    existing = agents.get(entry.agent_id)
    if existing is not None and existing.status is AgentStatus.REVOKED:
        raise AgentsRegistryError(
            f"agent {entry.agent_id} was revoked on {_when(existing)}{_why(existing)}; "
            "revocations are permanent: enroll the new key under a new agent id")
    if existing is not None:
        raise AgentsRegistryError(f"agent {entry.agent_id} is already enrolled (establishment "
                                  f"{existing.establishment_id})")
    for holder in key_holders(agents, entry.public_key):
        if holder.status is AgentStatus.REVOKED:
            raise AgentsRegistryError(
                f"this public key was revoked with agent {holder.agent_id} on "
                f"{_when(holder)}{_why(holder)}; a revoked key is never enrolled again")
        raise AgentsRegistryError(
            f"this public key is already enrolled as agent {holder.agent_id} (establishment "
            f"{holder.establishment_id}); one key, one agent")


def new_entry(agent_id: str, establishment_id: str, public_key: str, *, actor: str,
              at: datetime) -> AgentEntry:
    """A validated active entry, or the fields' problems as one registry error."""
    try:
        return AgentEntry(agent_id=agent_id, establishment_id=establishment_id,
                          public_key=public_key, enrolled_at=at, enrolled_by=actor)
    except ValidationError as exc:
        raise AgentsRegistryError(
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                      for e in exc.errors(include_input=False)),
            source=agent_id) from None


def enrolment(agents: Mapping[str, AgentEntry], agent_id: str, establishment_id: str,
              public_key: str, *, actor: str, reason: str, at: datetime) -> AgentChange:
    """The change that enrolls an agent, or the rule it breaks."""
    entry = new_entry(agent_id, establishment_id, public_key, actor=actor, at=at)
    check_enrolment(agents, entry)
    return AgentChange(at=at, action=AgentAction.ENROLLED, agent_id=agent_id, actor=actor,
                       reason=reason, entry=entry)


def revocation(agents: Mapping[str, AgentEntry], agent_id: str, *, actor: str, reason: str,
               at: datetime) -> AgentChange:
    """The change that revokes an agent for good (stolen key, retired server)."""
    existing = agents.get(agent_id)
    if existing is None:
        raise AgentsRegistryError(f"no agent {agent_id}")
    if existing.status is AgentStatus.REVOKED:
        raise AgentsRegistryError(
            f"agent {agent_id} is already revoked (on {_when(existing)}{_why(existing)})")
    if not reason.strip():
        raise AgentsRegistryError("a revocation needs a reason (--reason)")
    entry = existing.model_copy(update={"status": AgentStatus.REVOKED, "revoked_at": at,
                                        "revoked_by": actor, "revoked_reason": reason})
    return AgentChange(at=at, action=AgentAction.REVOKED, agent_id=agent_id, actor=actor,
                       reason=reason, entry=entry)


def _same(a: AgentEntry, b: AgentEntry) -> bool:
    return (a.public_key, a.establishment_id, a.status) == (b.public_key, b.establishment_id,
                                                            b.status)


def import_changes(agents: Mapping[str, AgentEntry], entries: Iterable[AgentEntry], *,
                   actor: str, reason: str, at: datetime) -> list[AgentChange]:
    """The changes that bring ``entries`` (a file of an older deployment) into the registry.

    All or nothing: the first entry that breaks a rule refuses the whole import. An entry the
    registry already holds as is changes nothing; a revoked entry is imported revoked (its id
    and key stay banned); an active entry the registry holds revoked is refused.
    """
    state = dict(agents)
    changes: list[AgentChange] = []
    for entry in entries:
        current = state.get(entry.agent_id)
        if current is not None and _same(current, entry):
            continue
        stamped = entry.model_copy(update={"enrolled_by": entry.enrolled_by or actor})
        if entry.status is AgentStatus.REVOKED and current is not None and (
                current.status is AgentStatus.ACTIVE and current.public_key == entry.public_key
                and current.establishment_id == entry.establishment_id):
            # Revoked since the registry learnt it: import the revocation.
            stamped = current.model_copy(update={
                "status": AgentStatus.REVOKED, "revoked_at": entry.revoked_at or at,
                "revoked_by": entry.revoked_by or actor,
                "revoked_reason": entry.revoked_reason or reason})
        else:
            try:
                check_enrolment(state, entry)
            except AgentsRegistryError as exc:
                raise AgentsRegistryError(exc.message, source=entry.agent_id) from None
            if entry.status is AgentStatus.REVOKED:
                stamped = stamped.model_copy(update={
                    "revoked_at": entry.revoked_at or at, "revoked_by": entry.revoked_by or actor,
                    "revoked_reason": entry.revoked_reason or reason})
        action = (AgentAction.REVOKED if stamped.status is AgentStatus.REVOKED
                  else AgentAction.ENROLLED)
        changes.append(AgentChange(at=at, action=action, agent_id=entry.agent_id, actor=actor,
                                   reason=reason, entry=stamped))
        state[entry.agent_id] = stamped
    return changes


# ---------------------------------------------------------------- the fold (readers)
class AgentsState:
    """The registry as a reader folds it from the topic, the rules enforced again.

    ``trusted`` is the mapping the processor's Verifier looks agents up in: revoked agents are
    in it (as revoked, so a refusal says so), agents whose key is also held by another agent
    id are not (one key, one agent: neither is trusted, whatever the order of the records), and
    an entry that cannot be read removes its agent (fail closed: it may have been a
    revocation). An agent id or key seen revoked is never trusted again on this reader, even
    if a later record says active (the CLI refuses that; only a write behind its back could).

    One writer (the follower thread) calls :meth:`apply`; readers only ``get`` from
    ``trusted``, and every change there is one dict assignment or deletion.
    """

    def __init__(self, name: str = "agents") -> None:
        self.name = name
        self.latest: dict[str, AgentEntry] = {}
        self.holders: dict[str, set[str]] = {}
        self.trusted: dict[str, AgentEntry] = {}
        #: Every agent id and key this reader saw revoked: never trusted again, even if their
        #: revoked entry later disappears (tombstone, unreadable record).
        self.revoked_ids: set[str] = set()
        self.revoked_keys: set[str] = set()
        #: Called with each agent id whose ``trusted`` entry may have changed.
        self.listener: Callable[[str], None] | None = None

    def apply(self, agent_id: str, value: bytes | None, where: str = "") -> None:
        """Fold one record of the registry topic (key ``agent_id``, ``value`` the entry's JSON,
        None for a tombstone)."""
        entry: AgentEntry | None = None
        if value is not None:
            try:
                entry = AgentEntry.model_validate_json(value)
            except ValueError as exc:
                log.error("%s registry %s: unreadable entry for agent %r, no longer trusted: %s",
                          self.name, where, agent_id, str(exc).splitlines()[0])
            else:
                if entry.agent_id != agent_id:
                    log.error("%s registry %s: record keyed %r holds agent %r; %r is no "
                              "longer trusted", self.name, where, agent_id, entry.agent_id,
                              agent_id)
                    entry = None
        else:
            log.warning("%s registry %s: agent %r deleted (tombstone)", self.name, where,
                        agent_id)
        if (entry is not None and entry.status is not AgentStatus.REVOKED
                and (agent_id in self.revoked_ids or entry.public_key in self.revoked_keys)):
            log.error("%s registry %s: agent %r or its key was revoked; revocations are "
                      "permanent, its re-activation is ignored", self.name, where, agent_id)
            return
        if entry is not None and entry.status is AgentStatus.REVOKED:
            self.revoked_ids.add(agent_id)
            self.revoked_keys.add(entry.public_key)
        self._set(agent_id, entry)

    def _set(self, agent_id: str, entry: AgentEntry | None) -> None:
        affected = {agent_id}
        previous = self.latest.pop(agent_id, None)
        if previous is not None:
            holders = self.holders.get(previous.public_key, set())
            holders.discard(agent_id)
            affected |= holders
            if not holders:
                self.holders.pop(previous.public_key, None)
        if entry is not None:
            self.latest[agent_id] = entry
            holders = self.holders.setdefault(entry.public_key, set())
            holders.add(agent_id)
            affected |= holders
            if len(holders) > 1:
                log.error("%s registry: agents %s share one public key; none of them is "
                          "trusted (one key, one agent)", self.name, ", ".join(sorted(holders)))
        for one in affected:
            current = self.latest.get(one)
            if current is not None and len(self.holders.get(current.public_key, ())) == 1:
                self.trusted[one] = current
            else:
                self.trusted.pop(one, None)
            if self.listener is not None:
                self.listener(one)

    def counts(self) -> dict[str, int]:
        """Trusted agents by status (for the logs and metrics)."""
        out = {status.value: 0 for status in AgentStatus}
        for entry in list(self.trusted.values()):
            out[entry.status.value] += 1
        return out


# ---------------------------------------------------------------- the file (import/export)
def _is_yaml(path: Path) -> bool:
    return path.suffix.lower() in (".yaml", ".yml")


def load_agents(path: Path) -> dict[str, AgentEntry]:
    """Agents of a registry file, by id. A duplicate id is an error: which key would be the
    right one?"""
    if not path.exists():
        raise AgentsRegistryMissing(f"no agents registry file at {path}")
    entries: list[tuple[int, AgentEntry]] = []
    try:
        if _is_yaml(path):
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
            if not isinstance(data, list):
                raise AgentsRegistryError("expected a YAML list of agents", source=str(path))
            entries = [(n, AgentEntry.model_validate(item)) for n, item in
                       enumerate(data, start=1)]
        else:
            with path.open("rb") as lines:
                for number, line in enumerate(lines, start=1):
                    if line.strip():
                        try:
                            entries.append((number, AgentEntry.model_validate_json(line)))
                        except ValueError as exc:
                            raise AgentsRegistryError(
                                str(exc), source=f"{path}:{number}") from exc
    except (ValueError, yaml.YAMLError) as exc:
        if isinstance(exc, AgentsRegistryError):
            raise
        raise AgentsRegistryError(str(exc), source=str(path)) from exc
    agents: dict[str, AgentEntry] = {}
    for number, entry in entries:
        if entry.agent_id in agents:
            raise AgentsRegistryError(f"agent {entry.agent_id} listed twice",
                                      source=f"{path}:{number}")
        agents[entry.agent_id] = entry
    return agents


def save_agents(path: Path, agents: Iterable[AgentEntry]) -> int:
    """Write a registry file atomically; returns the count."""
    items = list(agents)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    if _is_yaml(path):
        tmp.write_text(yaml.safe_dump([e.model_dump(mode="json", exclude_none=True)
                                       for e in items], sort_keys=False), encoding="utf-8")
    else:
        with tmp.open("wb") as out:
            for entry in items:
                out.write(entry.model_dump_json(exclude_none=True).encode() + b"\n")
    tmp.replace(path)
    return len(items)
