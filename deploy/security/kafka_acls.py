"""Kafka principals and ACLs from ``deploy/security/kafka-acls.yaml``, applied idempotently.

The YAML file is the one declaration of who may do what; this module turns it into
confluent-kafka :class:`AclBinding` objects and makes the broker match it with an admin client:
declared bindings are created (creating one that exists changes nothing, so applying twice is
harmless) and ALLOW bindings of the principals the file manages that it does not declare are
deleted (a right granted by hand, or one the file no longer gives, would otherwise outlive
every review of the file). :func:`check_acls` says what :func:`apply_acls` would change
without changing it. It works on the local stack (``vigie stack up`` calls
:func:`apply_acls`) and on any real cluster whose admin connection is given. SCRAM credentials
are set with :func:`upsert_scram_users`.

Managed principals: the fixed ones of the file, and agents. An agent's principal is made from
its id by the ``agent_template``; which agents should exist is the agents registry's business,
so agent principals are reconciled only as far as the caller says: those of ``agent_ids`` get
exactly the template's bindings, and when the caller passes ``active_agents`` (the registry's
active agents), the bindings of every other agent principal are deleted.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from pydantic import TypeAdapter, ValidationError

from runtime.errors import ConfigurationError
from schemas import topics
from schemas.enrolment import AgentId

DECLARATION = Path(__file__).with_name("kafka-acls.yaml")
CLUSTER = "kafka-cluster"  # the name of Kafka's one CLUSTER resource
SCRAM_ITERATIONS = 8192

#: What an agent id may be (the registry's rule), to tell an agent principal from another user.
_AGENT_ID: TypeAdapter[str] = TypeAdapter(AgentId)

_RESOURCES = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP,
              "cluster": ResourceType.BROKER, "transactional_id": ResourceType.TRANSACTIONAL_ID}


class AclDeclarationError(ConfigurationError):
    """The ACL file names an unknown topic, resource or operation."""


@dataclass(frozen=True)
class Grant:
    """One ``allow`` line: operations on a resource (exact name, or every name with a prefix)."""

    resource: str
    name: str
    prefix: bool
    operations: tuple[str, ...]

    def bindings(self, principal: str) -> list[AclBinding]:
        pattern = ResourcePatternType.PREFIXED if self.prefix else ResourcePatternType.LITERAL
        return [AclBinding(_RESOURCES[self.resource], self.name, pattern, principal, "*",
                           AclOperation[op.upper()], AclPermissionType.ALLOW)
                for op in self.operations]


@dataclass(frozen=True)
class Principal:
    """A Kafka user and what it may do (a super user needs no grant)."""

    role: str
    user: str
    grants: tuple[Grant, ...] = ()
    super_user: bool = False

    @property
    def principal(self) -> str:
        return f"User:{self.user}"

    def bindings(self) -> list[AclBinding]:
        return [b for grant in self.grants for b in grant.bindings(self.principal)]


@dataclass(frozen=True)
class AclDeclaration:
    """The whole file: fixed principals by role, and the template of an agent's."""

    principals: dict[str, Principal]
    agent_template: Principal

    def agent(self, agent_id: str) -> Principal:
        """The principal of one enrolled agent: its user, and the names of its own
        resources (transactional id, progress group), made from the agent id."""
        template = self.agent_template
        grants = tuple(Grant(g.resource, g.name.format(agent_id=agent_id), g.prefix,
                             g.operations) for g in template.grants)
        return Principal(f"agent:{agent_id}", template.user.format(agent_id=agent_id), grants)

    @property
    def super_users(self) -> list[str]:
        return [p.principal for p in self.principals.values() if p.super_user]

    @property
    def fixed_principals(self) -> set[str]:
        """``User:<user>`` of every fixed principal (admin, processor, sink, notifier)."""
        return {p.principal for p in self.principals.values()}

    def agent_of(self, principal: str) -> str | None:
        """The agent id whose principal this is (per the template), or None."""
        before, _, after = f"User:{self.agent_template.user}".partition("{agent_id}")
        match = re.fullmatch(f"{re.escape(before)}(.+){re.escape(after)}", principal)
        if match is None:
            return None
        try:
            return _AGENT_ID.validate_python(match.group(1))
        except ValidationError:
            return None


def _topic_name(name: str) -> str:
    """A topic constant of ``schemas.topics`` (``EVENTS_RAW``) to its name (``events.raw``)."""
    topic = getattr(topics, name, None)
    if not isinstance(topic, topics.Topic):
        raise AclDeclarationError(f"{name}: not a topic of schemas/topics.py",
                                  source=str(DECLARATION))
    return topic.name


def _grant(line: dict[str, Any]) -> Grant:
    resource = line.get("resource", "")
    if resource not in _RESOURCES:
        raise AclDeclarationError(f"unknown resource {resource!r}", source=str(DECLARATION))
    prefix = bool(line.get("prefix", False))
    if resource == "cluster":
        name = CLUSTER
    elif resource == "topic" and not prefix:
        name = _topic_name(str(line["name"]))
    else:
        name = str(line["name"])
    operations = tuple(str(op) for op in line.get("operations", ()))
    for op in operations:
        if op.upper() not in AclOperation.__members__ or op.upper() in ("ANY", "UNKNOWN"):
            raise AclDeclarationError(f"unknown operation {op!r}", source=str(DECLARATION))
    return Grant(resource, name, prefix, operations)


def _principal(role: str, body: dict[str, Any]) -> Principal:
    return Principal(role, str(body["user"]), tuple(_grant(g) for g in body.get("allow", ())),
                     bool(body.get("super_user", False)))


def load_declaration(path: Path = DECLARATION) -> AclDeclaration:
    """Read and check the ACL file (every topic must exist in ``schemas.topics``)."""
    data = yaml.safe_load(path.read_text())
    return AclDeclaration(
        principals={role: _principal(role, body) for role, body in data["principals"].items()},
        agent_template=_principal("agent", data["agent_template"]))


def bindings(declaration: AclDeclaration, agent_ids: Collection[str] = ()) -> list[AclBinding]:
    """Every ACL of the fixed principals and of the given agents."""
    principals = [*declaration.principals.values(),
                  *(declaration.agent(a) for a in sorted(set(agent_ids)))]
    return [b for p in principals for b in p.bindings()]


@dataclass(frozen=True)
class AclPlan:
    """What applying the file changes on a broker: bindings to create, bindings to delete."""

    add: list[AclBinding] = field(default_factory=list)
    remove: list[AclBinding] = field(default_factory=list)

    @property
    def in_sync(self) -> bool:
        return not self.add and not self.remove

    def lines(self) -> list[str]:
        """One line per change, ``+`` created, ``-`` deleted (for ``vigie security acls``)."""
        return ([f"+ {line}" for line in sorted(map(describe, self.add))]
                + [f"- {line}" for line in sorted(map(describe, self.remove))])


def describe(binding: AclBinding) -> str:
    """A binding as an operator reads it: who, may what, on which resource."""
    pattern = "*" if binding.resource_pattern_type is ResourcePatternType.PREFIXED else ""
    return (f"{binding.principal} {_label(binding.permission_type)} "
            f"{_label(binding.operation)} {_label(binding.restype)} {binding.name}{pattern}")


def _label(value: Enum | str | int) -> str:
    return value.name if isinstance(value, Enum) else str(value)


def _matching(principal: str | None = None) -> AclBindingFilter:
    """A filter matching every binding (of ``principal`` if given). confluent-kafka documents
    None as "any string", though its type hints say str."""
    return AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY,  # type: ignore[arg-type]
                            principal, None, AclOperation.ANY,  # type: ignore[arg-type]
                            AclPermissionType.ANY)


def plan_acls(declaration: AclDeclaration, present: Collection[AclBinding],
              agent_ids: Collection[str] = (),
              active_agents: Collection[str] | None = None) -> AclPlan:
    """Compare the broker's bindings (``present``) with the file's: pure, so testable.

    Wanted: the fixed principals' bindings and those of ``agent_ids`` and ``active_agents``.
    Deleted: ALLOW bindings not wanted whose principal is managed, that is a fixed principal,
    an agent of ``agent_ids``, or, when ``active_agents`` is given (the registry's view),
    any agent principal. DENY bindings are left alone: they can only take a right away, and
    deleting one would widen what a principal may do.
    """
    agents = set(agent_ids) | set(active_agents or ())
    wanted = set(bindings(declaration, agents))
    fixed = declaration.fixed_principals

    def managed(principal: str) -> bool:
        if principal in fixed:
            return True
        agent = declaration.agent_of(principal)
        return agent is not None and (active_agents is not None or agent in agents)

    existing = set(present)
    return AclPlan(
        add=sorted(wanted - existing),
        remove=sorted(b for b in existing - wanted
                      if b.permission_type is AclPermissionType.ALLOW and managed(b.principal)))


def present_acls(admin: AdminClient, timeout: float = 30) -> list[AclBinding]:
    """Every ACL binding on the broker (the admin must be allowed to describe them)."""
    found: list[AclBinding] = admin.describe_acls(_matching(), request_timeout=timeout).result()
    return found


def check_acls(admin: AdminClient, declaration: AclDeclaration | None = None,
               agent_ids: Collection[str] = (), active_agents: Collection[str] | None = None,
               timeout: float = 30) -> AclPlan:
    """What :func:`apply_acls` would change on this broker, changing nothing."""
    return plan_acls(declaration or load_declaration(), present_acls(admin, timeout),
                     agent_ids, active_agents)


def apply_acls(admin: AdminClient, declaration: AclDeclaration | None = None,
               agent_ids: Collection[str] = (), timeout: float = 30, *,
               active_agents: Collection[str] | None = None) -> AclPlan:
    """Make the broker's ACLs those of the file (see :func:`plan_acls`): create what is
    missing, delete what is granted but not declared; returns what was changed. Raises the
    broker's error if a change is refused."""
    plan = check_acls(admin, declaration, agent_ids, active_agents, timeout)
    create_bindings(admin, plan.add, timeout)
    delete_bindings(admin, plan.remove, timeout)
    return plan


def create_bindings(admin: AdminClient, wanted: Collection[AclBinding],
                    timeout: float = 30) -> None:
    """Create these bindings (existing ones are unchanged)."""
    if not wanted:
        return
    for future in admin.create_acls(list(wanted), request_timeout=timeout).values():
        future.result()


def delete_bindings(admin: AdminClient, unwanted: Collection[AclBinding],
                    timeout: float = 30) -> int:
    """Delete exactly these bindings; returns how many the broker deleted."""
    filters = [AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal,
                                b.host, b.operation, b.permission_type) for b in unwanted]
    return _delete(admin, filters, timeout)


def delete_principal_acls(admin: AdminClient, principal: str, timeout: float = 30) -> int:
    """Delete every binding of one principal (an agent being revoked); returns how many."""
    return _delete(admin, [_matching(principal)], timeout)


def _delete(admin: AdminClient, filters: list[AclBindingFilter], timeout: float) -> int:
    if not filters:
        return 0
    deleted = 0
    for future in admin.delete_acls(filters, request_timeout=timeout).values():
        deleted += len(future.result())
    return deleted


def upsert_scram_users(admin: AdminClient, passwords: dict[str, str],
                       timeout: float = 30) -> None:
    """Set the SCRAM-SHA-512 password of each user (created if new): credentials are issued
    without any certificate, and revoking one is deleting it."""
    if not passwords:
        return
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    changes: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(user, info, password.encode())
        for user, password in sorted(passwords.items())]
    for future in admin.alter_user_scram_credentials(changes,
                                                     request_timeout=timeout).values():
        future.result()


def delete_scram_user(admin: AdminClient, user: str, timeout: float = 30) -> bool:
    """Delete a user's SCRAM-SHA-512 credential: it can no longer authenticate. Returns False
    if it had none (an agent enrolled with an identity managed elsewhere), without error."""
    deletion = UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_512)
    future = admin.alter_user_scram_credentials([deletion], request_timeout=timeout)[user]
    try:
        future.result()
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError) and error.code() == KafkaError.RESOURCE_NOT_FOUND:
            return False
        raise
    return True
