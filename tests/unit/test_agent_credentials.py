"""An agent's Kafka credential and the ACL reconciliation, without a broker: which bindings a
reconcile creates and deletes, what the credential file holds and how it is written, and that
a refused enrolment creates nothing (deploy/security/{agent_credentials,kafka_acls}.py)."""

from __future__ import annotations

import base64
import os
import stat
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from deploy.security import agent_credentials as creds
from deploy.security import kafka_acls
from producers.agent.config import AgentConfig
from runtime.agents_registry import AgentsRegistryError
from runtime.agents_store import FileStore
from runtime.errors import CannotWrite, ConfigurationError
from runtime.kafka import KafkaConnection
from schemas.enrolment import AgentChange
from schemas.topics import EVENTS_RAW

ACLS = kafka_acls.load_declaration()
NATIONAL = KafkaConnection(bootstrap="kafka.vigie.example:9093", security_protocol="SASL_SSL",
                           ssl_cafile=Path("/etc/vigie/ca.pem"), sasl_mechanism="SCRAM-SHA-512",
                           sasl_username="vigie-admin", sasl_password="admin-secret")


def _grant(principal: str, topic: str, operation: AclOperation,
           permission: AclPermissionType = AclPermissionType.ALLOW) -> AclBinding:
    return AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, principal, "*",
                      operation, permission)


# --- reconciliation plan ------------------------------------------------------------------
def test_a_right_granted_by_hand_to_a_fixed_principal_is_deleted_and_a_missing_one_created(
        ) -> None:
    declared = kafka_acls.bindings(ACLS)
    extra = _grant("User:vigie-sink", EVENTS_RAW.name, AclOperation.WRITE)
    present = [*declared[1:], extra]
    plan = kafka_acls.plan_acls(ACLS, present)
    assert plan.add == [declared[0]]
    assert plan.remove == [extra]
    assert "- User:vigie-sink ALLOW WRITE TOPIC events.raw" in plan.lines()


def test_deny_bindings_and_unmanaged_principals_are_left_alone() -> None:
    """A DENY only takes rights away; a user the file does not name is not the file's."""
    deny = _grant("User:vigie-sink", EVENTS_RAW.name, AclOperation.WRITE,
                  AclPermissionType.DENY)
    stranger = _grant("User:kafka-connect", "connect-offsets", AclOperation.READ)
    plan = kafka_acls.plan_acls(ACLS, [*kafka_acls.bindings(ACLS), deny, stranger])
    assert plan.in_sync


def test_agent_principals_are_removed_only_when_the_caller_gives_the_active_agents() -> None:
    active, revoked = ACLS.agent("chu-01"), ACLS.agent("chu-02")
    present = [*kafka_acls.bindings(ACLS), *active.bindings(), *revoked.bindings()]
    # stack up knows no registry: other agents' bindings are not its business
    assert kafka_acls.plan_acls(ACLS, present, agent_ids=["chu-01"]).in_sync
    plan = kafka_acls.plan_acls(ACLS, present, active_agents=["chu-01", "chu-03"])
    assert sorted(plan.remove) == sorted(revoked.bindings())
    assert sorted(plan.add) == sorted(ACLS.agent("chu-03").bindings())


def test_an_enrolled_agents_undeclared_binding_is_removed() -> None:
    agent = ACLS.agent("chu-01")
    stolen = _grant(agent.principal, "incidents", AclOperation.READ)
    plan = kafka_acls.plan_acls(ACLS, [*kafka_acls.bindings(ACLS, ["chu-01"]), stolen],
                                agent_ids=["chu-01"])
    assert plan.remove == [stolen]


@pytest.mark.parametrize(("principal", "agent"), [
    ("User:agent-chu-01", "chu-01"), ("User:agent-a.b:c@d", "a.b:c@d"),
    ("User:vigie-sink", None), ("User:agent-", None), ("User:agent-a/b", None),
    ("Group:agent-chu-01", None)])
def test_agent_principals_are_recognised_by_the_template(principal: str,
                                                         agent: str | None) -> None:
    assert ACLS.agent_of(principal) == agent


# --- the credential file ------------------------------------------------------------------
def test_the_credential_file_is_the_kafka_section_an_agent_reads(tmp_path: Path) -> None:
    connection = creds.agent_connection(NATIONAL, "agent-chu-01", "s3cret",
                                        bootstrap="vigie.example.org:9094", ca=Path("ca.pem"))
    text = creds.credential_text("chu-01", connection, datetime.now(UTC))
    block = yaml.safe_load(text)
    assert set(block) == {"kafka"}
    config = AgentConfig.model_validate({
        "establishment": {"id": "750712184", "name": "CHU Exemple",
                          "type": "university_hospital", "region": "ile-de-france"},
        "agent_id": "chu-01", "key_path": "agent.key", **block})
    kafka = config.kafka
    assert (kafka.bootstrap, kafka.security_protocol, kafka.sasl_mechanism,
            kafka.sasl_username) == ("vigie.example.org:9094", "SASL_SSL", "SCRAM-SHA-512",
                                     "agent-chu-01")
    assert kafka.sasl_password is not None and kafka.sasl_password.get_secret_value() == "s3cret"
    assert kafka.ssl_cafile == Path("ca.pem")


def test_by_default_the_agent_uses_the_national_brokers_and_ca() -> None:
    connection = creds.agent_connection(NATIONAL, "agent-x", "pw")
    assert (connection.bootstrap, connection.ssl_cafile) == (NATIONAL.bootstrap,
                                                             NATIONAL.ssl_cafile)


def test_no_credential_is_issued_for_a_plaintext_connection() -> None:
    with pytest.raises(ConfigurationError, match="SASL_SSL"):
        creds.agent_connection(KafkaConnection(bootstrap="localhost:9092"), "agent-x", "pw")


def test_the_file_is_private_and_neither_overwritten_nor_followed(tmp_path: Path) -> None:
    out = tmp_path / "chu-01.kafka.yaml"
    os.close(creds.claim_private_file(out))
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    with pytest.raises(CannotWrite, match="exists already"):
        creds.claim_private_file(out)
    target = tmp_path / "elsewhere"
    target.write_text("untouched")
    link = tmp_path / "link.kafka.yaml"
    link.symlink_to(target)
    with pytest.raises(CannotWrite):
        creds.claim_private_file(link)
    assert target.read_text() == "untouched"


# --- order of enrolment -------------------------------------------------------------------
class FakeAdmin:
    """Records the credential and ACL calls an AdminClient would receive."""

    def __init__(self) -> None:
        self.users: dict[str, bytes] = {}
        self.acls: set[AclBinding] = set()

    @staticmethod
    def _done(value: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(value)
        return future

    def alter_user_scram_credentials(self, changes: list[Any], **_: Any) -> dict[str, Future[Any]]:
        for change in changes:
            if isinstance(change, UserScramCredentialUpsertion):
                self.users[change.user] = change.password
            elif isinstance(change, UserScramCredentialDeletion):
                self.users.pop(change.user, None)
        return {c.user: self._done(None) for c in changes}

    def create_acls(self, bindings: list[AclBinding], **_: Any) -> dict[AclBinding, Future[Any]]:
        self.acls.update(bindings)
        return {b: self._done(None) for b in bindings}

    def delete_acls(self, filters: list[AclBindingFilter],
                    **_: Any) -> dict[AclBindingFilter, Future[Any]]:
        results = {}
        for f in filters:
            gone = {b for b in self.acls if b.principal == f.principal}
            self.acls -= gone
            results[f] = self._done(list(gone))
        return results


def _public_key() -> str:
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def _enrol(store: FileStore, admin: FakeAdmin, agent_id: str, key: str,
           out: Path) -> tuple[Any, creds.IssuedCredential]:
    return creds.enrol_with_credential(store, cast(AdminClient, admin), NATIONAL, agent_id,
                                       "750712184", key, out, actor="alice", reason="test")


def test_enrolment_creates_user_acls_and_file_and_revocation_deletes_them(
        tmp_path: Path) -> None:
    store, admin, out = FileStore(tmp_path / "agents.jsonl"), FakeAdmin(), tmp_path / "c.yaml"
    entry, issued = _enrol(store, admin, "chu-01", _public_key(), out)
    assert entry.agent_id in store.entries()
    assert set(admin.users) == {"agent-chu-01"}
    assert admin.acls == set(ACLS.agent("chu-01").bindings())
    password = yaml.safe_load(out.read_text())["kafka"]["sasl_password"]
    assert admin.users["agent-chu-01"] == password.encode() and len(password) >= 40
    assert issued.user == "agent-chu-01"

    _, removed = creds.revoke_with_credential(store, cast(AdminClient, admin), "chu-01",
                                              actor="bob", reason="stolen")
    assert (removed.had_credential, removed.acls) == (True, len(ACLS.agent("chu-01").bindings()))
    assert admin.users == {} and admin.acls == set()


def test_a_refused_enrolment_creates_no_credential_and_no_file(tmp_path: Path) -> None:
    store, admin = FileStore(tmp_path / "agents.jsonl"), FakeAdmin()
    key = _public_key()
    _enrol(store, admin, "chu-01", key, tmp_path / "first.yaml")
    admin.users.clear()
    admin.acls.clear()
    again = tmp_path / "again.yaml"
    for agent_id in ("chu-01", "chu-02"):  # same id; same key under another id
        with pytest.raises(AgentsRegistryError):
            _enrol(store, admin, agent_id, key, again)
    assert admin.users == {} and admin.acls == set() and not again.exists()


def test_a_failed_registry_write_takes_the_credential_back(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    store, admin, out = FileStore(tmp_path / "agents.jsonl"), FakeAdmin(), tmp_path / "c.yaml"

    def broken(_changes: list[AgentChange]) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(store, "write", broken)
    with pytest.raises(OSError, match="disk full"):
        _enrol(store, admin, "chu-01", _public_key(), out)
    assert admin.users == {} and admin.acls == set() and not out.exists()


def test_an_existing_credential_file_stops_the_enrolment_before_anything_is_made(
        tmp_path: Path) -> None:
    store, admin, out = FileStore(tmp_path / "agents.jsonl"), FakeAdmin(), tmp_path / "c.yaml"
    out.write_text("an older credential")
    with pytest.raises(CannotWrite):
        _enrol(store, admin, "chu-01", _public_key(), out)
    assert admin.users == {} and store.entries() == {}
    assert out.read_text() == "an older credential"
