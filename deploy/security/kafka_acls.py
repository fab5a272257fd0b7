"""Kafka principals and ACLs from ``deploy/security/kafka-acls.yaml``, applied idempotently.

The YAML file is the one declaration of who may do what; this module turns it into
confluent-kafka :class:`AclBinding` objects and creates them with an admin client (creating an
ACL that already exists changes nothing, so applying twice is harmless). It works on the local
stack (``vigie stack up`` calls :func:`apply_acls`) and on any real cluster whose admin
connection is given. SCRAM credentials are set with :func:`upsert_scram_users`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)

from runtime.errors import ConfigurationError
from schemas import topics

DECLARATION = Path(__file__).with_name("kafka-acls.yaml")
CLUSTER = "kafka-cluster"  # the name of Kafka's one CLUSTER resource
SCRAM_ITERATIONS = 8192

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


def bindings(declaration: AclDeclaration, agent_ids: list[str] | tuple[str, ...] = ()
             ) -> list[AclBinding]:
    """Every ACL of the fixed principals and of the given agents."""
    principals = [*declaration.principals.values(),
                  *(declaration.agent(a) for a in agent_ids)]
    return [b for p in principals for b in p.bindings()]


def apply_acls(admin: AdminClient, declaration: AclDeclaration | None = None,
               agent_ids: list[str] | tuple[str, ...] = (), timeout: float = 30) -> int:
    """Create the declared ACLs (those that exist already are left as they are); returns how
    many bindings were applied. Raises the broker's error if one is refused."""
    wanted = bindings(declaration or load_declaration(), agent_ids)
    if not wanted:
        return 0
    for future in admin.create_acls(wanted, request_timeout=timeout).values():
        future.result()
    return len(wanted)


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
