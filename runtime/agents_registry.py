"""The national registry of enrolled agents, as a file, and the two changes made to it.

The entries' format is :class:`schemas.enrolment.AgentEntry`; this module reads and writes
the file (JSON lines, default, or a YAML list for ``.yaml``/``.yml``) that the processors load
at start-up, and applies ``vigie agents add|revoke``. A revoked agent stays in the file (with
``revoked_at``) so that the reason its events are refused remains explainable.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import yaml
from pydantic import ValidationError

from runtime.errors import DataError, InputMissing
from schemas.enrolment import AgentEntry, AgentStatus


class AgentsRegistryError(DataError):
    """The agents registry file is malformed (with the line) or inconsistent, or a change to it
    contradicts what it holds (enrolling an enrolled agent, revoking an unknown one)."""


class AgentsRegistryMissing(InputMissing, AgentsRegistryError):
    """No agents registry file where the settings say."""


def _is_yaml(path: Path) -> bool:
    return path.suffix.lower() in (".yaml", ".yml")


def load_agents(path: Path) -> dict[str, AgentEntry]:
    """Agents by id. A duplicate id is an error: which key would be the right one?"""
    if not path.exists():
        raise AgentsRegistryMissing(
            f"no agents registry at {path}; enroll agents with `vigie agents add`")
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
    """Write atomically (a processor reading it never sees half a file); returns the count."""
    items = list(agents)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    if _is_yaml(path):
        tmp.write_text(yaml.safe_dump([e.model_dump(mode="json") for e in items],
                                      sort_keys=False), encoding="utf-8")
    else:
        with tmp.open("wb") as out:
            for entry in items:
                out.write(entry.model_dump_json(exclude_none=True).encode() + b"\n")
    tmp.replace(path)
    return len(items)


def _existing(path: Path) -> dict[str, AgentEntry]:
    """The registry's agents; none yet when the file does not exist (the first enrolment)."""
    return load_agents(path) if path.exists() else {}


def enroll_agent(path: Path, agent_id: str, establishment_id: str,
                 public_key: str) -> AgentEntry:
    """Add an active agent; refuses to replace the key of an agent still active (revoke it
    first, so that the replacement is a deliberate, visible act)."""
    agents = _existing(path)
    if agent_id in agents and agents[agent_id].status is AgentStatus.ACTIVE:
        raise AgentsRegistryError(
            f"agent {agent_id} is already enrolled; revoke it first to replace its key",
            source=str(path))
    try:
        entry = AgentEntry(agent_id=agent_id, establishment_id=establishment_id,
                           public_key=public_key)
    except ValidationError as exc:
        raise AgentsRegistryError(
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()),
            source=agent_id) from None
    agents[agent_id] = entry
    save_agents(path, agents.values())
    return entry


def revoke_agent(path: Path, agent_id: str) -> AgentEntry:
    """Mark an agent revoked (stolen key, retired server); its entry stays in the file."""
    agents = _existing(path)
    if agent_id not in agents:
        raise AgentsRegistryError(f"no agent {agent_id}", source=str(path))
    agents[agent_id] = agents[agent_id].model_copy(
        update={"status": AgentStatus.REVOKED, "revoked_at": datetime.now(UTC)})
    save_agents(path, agents.values())
    return agents[agent_id]


def enrolled_agents(path: Path) -> list[AgentEntry]:
    """Every agent of the registry, revoked ones included; none when there is no file yet."""
    return list(_existing(path).values())
