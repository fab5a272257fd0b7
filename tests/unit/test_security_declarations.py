"""The security declarations (deploy/security) and the local stack's PKI and client files:
what each principal may do, checked without a cluster."""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path

import pytest
import yaml
from confluent_kafka.admin import AclOperation, ResourcePatternType, ResourceType
from cryptography import x509

from deploy.local.credentials import LOCAL_AGENT, LocalSecurity
from deploy.local.pki import Pki
from deploy.local.settings import StackSettings
from deploy.security import elasticsearch_roles, kafka_acls
from runtime.settings import Settings, load_settings
from schemas import indices
from schemas.indices import TOPIC_TO_INDEX
from schemas.organization import Region
from schemas.topics import AGENT_PROGRESS, ALL_TOPICS, EVENTS_RAW
from sinks.elasticsearch.templates import template_body

ACLS = kafka_acls.load_declaration()


def _rights(principal: kafka_acls.Principal) -> set[tuple[str, str, str, str]]:
    return {(b.restype.name, b.name, b.resource_pattern_type.name, b.operation.name)
            for b in principal.bindings()}


def test_an_agent_writes_events_raw_and_reads_nothing_national() -> None:
    """Write on events.raw; its own transactional id and progress group (exact names, so that
    no agent fences another's producer or reads another's position); READ only on the
    always-empty progress topic, which TxnOffsetCommit checks."""
    assert _rights(ACLS.agent("ch-rennes-01")) == {
        ("TOPIC", EVENTS_RAW.name, "LITERAL", "WRITE"),
        ("BROKER", "kafka-cluster", "LITERAL", "IDEMPOTENT_WRITE"),
        ("TRANSACTIONAL_ID", "vigie-agent-ch-rennes-01", "LITERAL", "WRITE"),
        ("TRANSACTIONAL_ID", "vigie-agent-ch-rennes-01", "LITERAL", "DESCRIBE"),
        ("GROUP", "vigie-agent-ch-rennes-01", "LITERAL", "READ"),
        ("GROUP", "vigie-agent-ch-rennes-01", "LITERAL", "DESCRIBE"),
        ("TOPIC", AGENT_PROGRESS.name, "LITERAL", "READ"),
        ("TOPIC", AGENT_PROGRESS.name, "LITERAL", "DESCRIBE"),
    }
    assert ACLS.agent("ch-rennes-01").user == "agent-ch-rennes-01"
    readable = {name for (kind, name, _, op) in _rights(ACLS.agent("x"))
                if kind == "TOPIC" and op == "READ"}
    assert readable == {AGENT_PROGRESS.name}


def test_only_the_admin_may_create_alter_or_delete_pipeline_topics() -> None:
    pipeline = {t.name for t in ALL_TOPICS}
    assert ACLS.super_users == ["User:vigie-admin"]
    for principal in [*ACLS.principals.values(), ACLS.agent("x")]:
        for binding in principal.bindings():
            if binding.operation in (AclOperation.CREATE, AclOperation.DELETE,
                                     AclOperation.ALTER, AclOperation.ALTER_CONFIGS,
                                     AclOperation.ALL):
                # Only the processor's own changelogs, under its prefix.
                assert binding.resource_pattern_type == ResourcePatternType.PREFIXED
                assert binding.name == "vigie-processor", binding
                assert not any(t.startswith(binding.name) for t in pipeline)


def test_consumer_groups_are_bound_to_their_principal_by_the_default_group_names() -> None:
    defaults = Settings.model_fields
    expected = {"processor": defaults["processor_app_id"].default,
                "sink": defaults["sink_group"].default,
                "notifier": defaults["notifier_group"].default}
    for role, group in expected.items():
        # (The processor's follower of the agents registry names a group it never joins.)
        groups = [b for b in ACLS.principals[role].bindings()
                  if b.restype == ResourceType.GROUP and b.name != "vigie-agents-follower"]
        assert groups and all(group.startswith(b.name) for b in groups), role
        others = [p for r, p in ACLS.principals.items() if r not in (role, "admin")]
        for other in others:
            assert not any(b.restype == ResourceType.GROUP and group.startswith(b.name)
                           for b in other.bindings()), f"{other.role} may join {group}"


def test_the_sink_reads_exactly_what_it_indexes_and_writes_nothing() -> None:
    rights = _rights(ACLS.principals["sink"])
    topics = {name for (kind, name, _, op) in rights if kind == "TOPIC" and op == "READ"}
    assert topics == set(TOPIC_TO_INDEX)
    assert not any(op == "WRITE" for (*_, op) in rights)


def test_the_notifier_reads_alerts_only() -> None:
    topics = {name for (kind, name, _, _op) in _rights(ACLS.principals["notifier"])
              if kind == "TOPIC"}
    assert topics == {"alerts"}


def test_an_unknown_topic_in_the_acl_file_is_refused(tmp_path: Path) -> None:
    data = yaml.safe_load(kafka_acls.DECLARATION.read_text())
    data["principals"]["sink"]["allow"][0]["name"] = "EVENTS_RAWW"
    bad = tmp_path / "acls.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(kafka_acls.AclDeclarationError, match="EVENTS_RAWW"):
        kafka_acls.load_declaration(bad)


# --- Elasticsearch ---------------------------------------------------------------------------
ROLES = elasticsearch_roles.load_declaration()


def test_the_sink_writes_vigie_indices_and_manages_nothing() -> None:
    sink = ROLES.roles["vigie_sink"]
    assert not sink.get("cluster"), "no cluster privilege (templates are the setup's)"
    for entry in sink["indices"]:
        assert all(name.startswith("vigie-") for name in entry["names"])
        assert not {"manage", "all", "delete_index"} & set(entry["privileges"])


def test_a_regional_operator_reads_only_its_regions_aliases() -> None:
    role = ROLES.roles[f"vigie_regional_operator_{Region.BRETAGNE.value}"]
    names = {n for entry in role["indices"] for n in entry["names"]}
    assert names == {"vigie-events-bretagne", "vigie-incidents-bretagne"}
    aliases = set(template_body(indices.EVENTS)["template"]["aliases"]) | set(
        template_body(indices.INCIDENTS)["template"]["aliases"])
    assert names <= aliases, "the role must name aliases the templates create"
    assert ROLES.users[elasticsearch_roles.regional_user(Region.BRETAGNE)] == [
        f"vigie_regional_operator_{Region.BRETAGNE.value}"]


def test_the_report_role_has_no_refresh_or_write() -> None:
    privileges = {p for e in ROLES.roles["vigie_report"]["indices"] for p in e["privileges"]}
    assert privileges == {"read"}


def test_file_realm_hashes_are_elasticsearch_pbkdf2() -> None:
    hashed = elasticsearch_roles.pbkdf2_hash("s3cret", salt=b"\x01" * 32)
    prefix, salt, key = hashed.split("$")
    assert prefix == "{PBKDF2}10000"
    expected = hashlib.pbkdf2_hmac("sha512", b"s3cret", base64.b64decode(salt), 10000, 32)
    assert base64.b64decode(key) == expected


def test_the_file_realm_is_written_owner_only(tmp_path: Path) -> None:
    passwords = {user: f"clear-{user}-password" for user in ROLES.users}
    elasticsearch_roles.write_file_realm(tmp_path, passwords, ROLES)
    users = (tmp_path / "users").read_text().splitlines()
    assert {line.split(":")[0] for line in users} == set(ROLES.users)
    assert "-password" not in (tmp_path / "users").read_text()
    assert stat.S_IMODE((tmp_path / "users").stat().st_mode) == 0o600
    assert "superuser:vigie-admin" in (tmp_path / "users_roles").read_text().splitlines()


# --- PKI and client files -------------------------------------------------------------------
def test_the_pki_is_made_once_owner_only_for_localhost(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki").ensure()
    first = {p.name: p.read_bytes() for p in pki.root.iterdir()}
    Pki(tmp_path / "pki").ensure()
    assert {p.name: p.read_bytes() for p in pki.root.iterdir()} == first, "idempotent"
    assert stat.S_IMODE(pki.root.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in pki.root.iterdir())
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    for name in ("kafka", "elasticsearch"):
        cert = x509.load_pem_x509_certificate(pki.server(name).cert.read_bytes())
        cert.verify_directly_issued_by(ca)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["localhost"]
        assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_client_files_give_each_principal_its_own_credentials(tmp_path: Path) -> None:
    security = LocalSecurity(tmp_path, StackSettings(stack_kafka_port=19092,
                                                     stack_es_port=19200))
    written = security.write_client_files()
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in written)
    admin = load_settings(security.settings_file)
    sink = load_settings(security.client_file("sink"))
    assert admin.kafka.bootstrap == "localhost:19092"
    assert admin.kafka.security_protocol == "SASL_SSL"
    assert admin.kafka.sasl_mechanism == "SCRAM-SHA-512"
    assert admin.es_url == "https://localhost:19200"
    assert admin.es_ca_certs == security.pki.ca_cert
    assert (admin.kafka.sasl_username, sink.kafka.sasl_username) == ("vigie-admin",
                                                                     "vigie-sink")
    assert sink.es_username == "vigie-sink"
    assert admin.kafka.sasl_password != sink.kafka.sasl_password
    passwords = security.passwords()
    assert LocalSecurity(tmp_path, StackSettings()).passwords() == passwords, "kept"
    assert ACLS.agent(LOCAL_AGENT).user in passwords["kafka"]


def test_each_long_running_process_gets_its_principals_settings_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from deploy.local.pipeline import client_config

    monkeypatch.setenv("VIGIE_HOME", str(tmp_path))
    sink = tmp_path / "clients" / "sink.yaml"
    sink.parent.mkdir()
    sink.write_text("{}\n")
    assert client_config(["sink"], {}) == {"VIGIE_CONFIG": str(sink)}
    assert client_config(["sink"], {"VIGIE_CONFIG": "/chosen.yaml"}) == {}, "a choice wins"
    assert client_config(["sink", "--config", "/chosen.yaml"], {}) == {}
    assert client_config(["process"], {}) == {}, "no file written for it: nothing imposed"
    assert client_config(["simulate"], {}) == {}, "not a principal of its own"
