"""An enrolled agent's Kafka identity: its SCRAM-SHA-512 user, its ACLs, its client settings.

``vigie agents add`` enrols an agent in the registry (which key speaks for which
establishment) *and* gives it a way into Kafka: a SCRAM-SHA-512 user named by the
``agent_template`` of ``kafka-acls.yaml`` (``agent-<agent id>``), with a generated password,
and that template's ACLs (write ``events.raw``, its own transactional id and progress group,
nothing to read). The password goes into one file only, the agent's Kafka client block, made
0600 without following a symlink and never printed; the national side keeps no copy (Kafka
stores a salted SCRAM hash). ``vigie agents revoke`` deletes the user and its ACLs, so a
revoked agent cannot even authenticate.

Order (:func:`enrol_with_credential`): the registry's rules are checked first, so a refused
enrolment (duplicate id or key, revoked agent) creates nothing; the output file is claimed
before the credential exists (a path that cannot be written fails before anything is made);
the credential and ACLs are made before the registry entry is written, and deleted again if
that write fails, so no enrolled agent is left without the credential it was promised, nor a
credential without its enrolment.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from deploy.security.kafka_acls import (
    AclDeclaration,
    create_bindings,
    delete_principal_acls,
    delete_scram_user,
    load_declaration,
    upsert_scram_users,
)
from runtime.agents_store import AgentsStore, enroll, revoke
from runtime.errors import CannotWrite, ConfigurationError, ServiceUnavailable
from runtime.kafka import KafkaConnection
from schemas.enrolment import AgentEntry

#: Bytes of randomness in a generated password (``secrets.token_urlsafe``: 43 characters).
PASSWORD_BYTES = 32
MECHANISM = "SCRAM-SHA-512"


class CredentialError(ServiceUnavailable):
    """Kafka refused or failed to create or delete an agent's credential or ACLs."""


def default_credential_file(agent_id: str) -> Path:
    """``./<agent id>.kafka.yaml``: where ``vigie agents add`` writes the client block."""
    return Path(f"{agent_id}.kafka.yaml")


def agent_connection(national: KafkaConnection, user: str, password: str, *,
                     bootstrap: str | None = None, ca: Path | None = None) -> KafkaConnection:
    """The agent's Kafka connection: the brokers and CA of the national connection (or those
    given: the agents may reach another listener, and find the CA at another path), SASL_SSL
    with its own SCRAM user. Refused without TLS: the password must not cross in clear."""
    if not national.uses_tls:
        raise ConfigurationError(
            f"the Kafka connection is {national.security_protocol}: an agent's SCRAM "
            "credential is only issued for a TLS listener (SASL_SSL)", source="kafka")
    return KafkaConnection(
        bootstrap=bootstrap or national.bootstrap, security_protocol="SASL_SSL",
        ssl_cafile=ca if ca is not None else national.ssl_cafile,
        ssl_check_hostname=national.ssl_check_hostname, sasl_mechanism=MECHANISM,
        sasl_username=user, sasl_password=password)


def client_block(connection: KafkaConnection) -> dict[str, Any]:
    """The ``kafka:`` section of an agent's configuration (``producers.agent.config``), with
    the password in clear: only for the 0600 file."""
    block: dict[str, Any] = {"bootstrap": connection.bootstrap,
                             "security_protocol": connection.security_protocol}
    if connection.ssl_cafile is not None:
        block["ssl_cafile"] = str(connection.ssl_cafile)
    if not connection.ssl_check_hostname:
        block["ssl_check_hostname"] = False
    block["sasl_mechanism"] = connection.sasl_mechanism
    block["sasl_username"] = connection.sasl_username
    if connection.sasl_password is not None:
        block["sasl_password"] = connection.sasl_password.get_secret_value()
    return block


def credential_text(agent_id: str, connection: KafkaConnection, at: datetime) -> str:
    """The credential file: a comment saying what it is, then ``kafka:`` as the agent reads it."""
    header = (f"# Kafka credential of agent {agent_id}, issued {at.isoformat(timespec='seconds')}"
              " by `vigie agents add`.\n"
              "# Secret (the only copy of the password): copy this kafka: section into the "
              "agent's configuration\n# (docs/agent.md, Enrol), keep it 0600, delete this "
              "file. Revoking the agent deletes the credential.\n")
    return header + yaml.safe_dump({"kafka": client_block(connection)}, sort_keys=False)


def claim_private_file(path: Path) -> int:
    """Create ``path`` for writing, 0600, refusing an existing file or a symlink (never
    followed, never overwritten: a credential file is not silently replaced)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        return os.open(path, flags, 0o600)
    except FileExistsError:
        raise CannotWrite("exists already: a credential file is never overwritten (move it "
                          "away, or choose another --credential-out)", source=str(path)) from None
    except OSError as exc:
        raise CannotWrite(exc.strerror or str(exc), source=str(path)) from None


@dataclass(frozen=True)
class IssuedCredential:
    """What was created for an agent (the password is only in ``path``)."""

    agent_id: str
    user: str
    acls: int
    path: Path


def issue_credential(admin: AdminClient, national: KafkaConnection, agent_id: str,
                     out: Path, *, declaration: AclDeclaration | None = None,
                     bootstrap: str | None = None, ca: Path | None = None,
                     timeout: float = 30) -> IssuedCredential:
    """Create (or reset: a new password) the agent's SCRAM user and its template ACLs, and
    write its client block to ``out``. Nothing is left behind if a step fails."""
    principal = (declaration or load_declaration()).agent(agent_id)
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    connection = agent_connection(national, principal.user, password, bootstrap=bootstrap,
                                  ca=ca)
    fd = claim_private_file(out)
    created = False
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            try:
                upsert_scram_users(admin, {principal.user: password}, timeout)
                created = True
                create_bindings(admin, principal.bindings(), timeout)
            except KafkaException as exc:
                raise CredentialError(f"Kafka refused the credential of {principal.user}: "
                                      f"{exc.args[0] if exc.args else exc}",
                                      source=national.bootstrap) from None
            file.write(credential_text(agent_id, connection, datetime.now(UTC)))
    except BaseException:
        out.unlink(missing_ok=True)
        if created:
            remove_credential(admin, agent_id, declaration=declaration, timeout=timeout)
        raise
    return IssuedCredential(agent_id, principal.user, len(principal.bindings()), out)


@dataclass(frozen=True)
class RemovedCredential:
    """What revoking an agent's Kafka identity deleted."""

    user: str
    had_credential: bool
    acls: int


def remove_credential(admin: AdminClient, agent_id: str, *,
                      declaration: AclDeclaration | None = None,
                      timeout: float = 30) -> RemovedCredential:
    """Delete the agent's SCRAM user and every ACL of its principal (declared or not). An
    agent with no credential here (its identity managed elsewhere) is not an error."""
    principal = (declaration or load_declaration()).agent(agent_id)
    try:
        existed = delete_scram_user(admin, principal.user, timeout)
        acls = delete_principal_acls(admin, principal.principal, timeout)
    except KafkaException as exc:
        raise CredentialError(f"Kafka refused to delete the credential of {principal.user}: "
                              f"{exc.args[0] if exc.args else exc}") from None
    return RemovedCredential(principal.user, existed, acls)


def enrol_with_credential(store: AgentsStore, admin: AdminClient, national: KafkaConnection,
                          agent_id: str, establishment_id: str, public_key: str, out: Path, *,
                          actor: str, reason: str, bootstrap: str | None = None,
                          ca: Path | None = None,
                          declaration: AclDeclaration | None = None,
                          ) -> tuple[AgentEntry, IssuedCredential]:
    """Enrol the agent and issue its Kafka credential, in the order the module doc gives."""
    issued: list[IssuedCredential] = []

    def issue(_entry: AgentEntry) -> None:
        issued.append(issue_credential(admin, national, agent_id, out, declaration=declaration,
                                       bootstrap=bootstrap, ca=ca))

    try:
        entry = enroll(store, agent_id, establishment_id, public_key, actor=actor,
                       reason=reason, before_write=issue)
    except BaseException:
        if issued:  # the registry write failed after the credential was made
            issued[0].path.unlink(missing_ok=True)
            remove_credential(admin, agent_id, declaration=declaration)
        raise
    return entry, issued[0]


def revoke_with_credential(store: AgentsStore, admin: AdminClient, agent_id: str, *,
                           actor: str, reason: str,
                           declaration: AclDeclaration | None = None,
                           ) -> tuple[AgentEntry, RemovedCredential]:
    """Revoke the agent in the registry (every processor refuses its records), then delete
    its Kafka credential and ACLs (it can no longer connect). A refused revocation (unknown
    agent, already revoked) deletes nothing."""
    entry = revoke(store, agent_id, actor=actor, reason=reason)
    return entry, remove_credential(admin, agent_id, declaration=declaration)
