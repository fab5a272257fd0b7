"""Pseudonymisation, signing, the agents registry and the processor's Verifier."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.signing import SigningKey

from processors.validate import Refused
from processors.verify import Verifier, record_sequence
from producers.agent.pipeline import Finisher
from producers.agent.pseudonymise import Kind, Pseudonymiser
from producers.signing import Signer, generate_key, load_key, public_key_b64
from producers.simulator.fleet import simulated_agents
from runtime.agents_registry import load_agents, save_agents
from schemas.deadletter import Reason
from schemas.enrolment import (
    HEADER_AGENT,
    HEADER_SEQUENCE,
    HEADER_SIGNATURE,
    AgentEntry,
    AgentStatus,
    signed_message,
)
from schemas.event import SecurityEvent
from schemas.organization import Organization

from .conftest import ORG

KEY = b"k" * 32


def test_pseudonyms_are_stable_keyed_and_case_insensitive_for_names() -> None:
    p = Pseudonymiser(KEY)
    other = Pseudonymiser(b"x" * 32)
    assert p.pseudonym("DUPONT", Kind.NAME) == p.pseudonym("dupont", Kind.NAME)
    assert p.pseudonym("dupont", Kind.NAME).startswith("ps-")
    assert p.pseudonym("dupont", Kind.NAME) != other.pseudonym("dupont", Kind.NAME)
    assert p.pseudonym("dupont", Kind.NAME) != p.pseudonym("martin", Kind.NAME)


def test_well_known_principals_and_machine_accounts_keep_what_sigma_matches() -> None:
    p = Pseudonymiser(KEY)
    for value in ("SYSTEM", "ANONYMOUS LOGON", "-", "NT AUTHORITY\\SYSTEM"):
        assert p.pseudonym(value, Kind.NAME) == value
    machine = p.pseudonym("PC-URG-01$", Kind.NAME)
    assert machine.endswith("$") and machine.startswith("ps-")


def test_private_ips_pseudonymised_public_kept_type_preserved(finisher: Finisher) -> None:
    p = Pseudonymiser(KEY)
    private = p.pseudonym("10.1.2.3", Kind.IP)
    assert private.startswith("fd") and private == p.pseudonym("10.1.2.3", Kind.IP)
    assert p.pseudonym("203.0.113.9", Kind.IP) == "203.0.113.9"
    assert Pseudonymiser(KEY, ip_scope="all").pseudonym("203.0.113.9", Kind.IP) != "203.0.113.9"


def test_default_fields_applied_to_a_windows_logon(key: Ed25519PrivateKey) -> None:
    finisher = Finisher(ORG, Signer("a", key), Pseudonymiser(KEY))
    doc = {"@timestamp": "2025-03-10T11:00:00Z", "event": {"id": "1" * 32},
           "host": {"name": "PC-CARDIO-DUPONT"}, "user": {"name": "dupont"},
           "source": {"ip": "10.20.30.40", "port": 50000},
           "winlog": {"channel": "Security", "event_id": 4625,
                      "computer_name": "PC-CARDIO-DUPONT",
                      "event_data": {"TargetUserName": "Dupont", "IpAddress": "10.20.30.40",
                                     "WorkstationName": "PC-CARDIO-DUPONT",
                                     "LogonType": "3", "SubjectUserName": "-"}}}
    value = finisher.value(doc)[1]
    assert b"dupont" not in value.lower() and b"10.20.30.40" not in value
    event = SecurityEvent.model_validate_json(value)
    assert event.user and event.winlog
    assert event.user.name == event.winlog.event_data["TargetUserName"]  # correlatable
    assert event.winlog.event_data["LogonType"] == "3"
    assert event.winlog.event_data["SubjectUserName"] == "-"
    assert event.host and event.host.name == event.winlog.computer_name


def test_key_files(tmp_path: Path) -> None:
    path = tmp_path / "agent.key"
    key = generate_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert public_key_b64(load_key(path)) == public_key_b64(key)
    with pytest.raises(Exception, match="refusing"):
        generate_key(path)


# --- verification ------------------------------------------------------------------------------

@pytest.fixture()
def setup(key: Ed25519PrivateKey) -> tuple[Verifier, Signer, bytes]:
    other_org = "130000001"
    agents = [
        AgentEntry(agent_id="chu-test-01", establishment_id=ORG.id,
                   public_key=public_key_b64(key)),
        AgentEntry(agent_id="clinique-02", establishment_id=other_org,
                   public_key=public_key_b64(Ed25519PrivateKey.generate())),
        AgentEntry(agent_id="old-03", establishment_id=ORG.id, public_key=public_key_b64(key),
                   status=AgentStatus.REVOKED),
    ]
    signer = Signer("chu-test-01", key)
    finisher = Finisher(ORG, signer, None)
    value = finisher.value({"@timestamp": "2025-03-10T11:00:00Z",
                            "event": {"id": "2" * 32, "code": "4625"},
                            "user": {"name": "ps-123"}})[1]
    return Verifier(agents), signer, value


def test_valid_record_passes(setup: tuple[Verifier, Signer, bytes]) -> None:
    verifier, signer, value = setup
    assert verifier.verify(value, signer.headers(value), ORG.id,
                           agent_id="chu-test-01") == "chu-test-01"
    # Kafka clients give headers as a list of tuples or a dict, bytes or str.
    as_dict = {k: v.decode() for k, v in signer.headers(value)}
    assert verifier.verify(value, as_dict, ORG.id) == "chu-test-01"


def _refused(verifier: Verifier, value: bytes, headers: object, org: str = ORG.id,
             agent_id: str | None = None) -> Reason:
    with pytest.raises(Refused) as exc:
        verifier.verify(value, headers, org, agent_id=agent_id)  # type: ignore[arg-type]
    assert exc.value.detail
    return exc.value.reason


def test_forgeries_are_refused_with_their_reason(setup: tuple[Verifier, Signer, bytes]) -> None:
    verifier, signer, value = setup
    headers = signer.headers(value)
    # tampered field: the signature no longer matches
    tampered = value.replace(b"ps-123", b"ps-999")
    assert _refused(verifier, tampered, headers) is Reason.BAD_SIGNATURE
    # wrong key: an attacker signs with their own key under our agent id
    forger = Signer("chu-test-01", Ed25519PrivateKey.generate())
    assert _refused(verifier, value, forger.headers(value)) is Reason.BAD_SIGNATURE
    # other establishment's id: a valid agent claims to speak for another hospital
    assert _refused(verifier, value, headers, org="130000001") is Reason.WRONG_ESTABLISHMENT
    # no headers / unknown agent; a revoked agent is refused as such (not as unknown)
    assert _refused(verifier, value, []) is Reason.UNKNOWN_AGENT
    assert _refused(verifier, value, None) is Reason.UNKNOWN_AGENT
    unknown = [(HEADER_AGENT, b"nobody"), headers[1]]
    assert _refused(verifier, value, unknown) is Reason.UNKNOWN_AGENT
    revoked = Signer("old-03", signer.key)
    assert _refused(verifier, value, revoked.headers(value)) is Reason.REVOKED_AGENT
    # garbage signature, body agent.id that is not the signer
    assert _refused(verifier, value, [headers[0], (HEADER_SIGNATURE, b"!!")]) \
        is Reason.BAD_SIGNATURE
    short = base64.b64encode(b"x" * 10)
    assert _refused(verifier, value, [headers[0], (HEADER_SIGNATURE, short)]) \
        is Reason.BAD_SIGNATURE
    assert _refused(verifier, value, headers, agent_id="clinique-02") is Reason.BAD_SIGNATURE


def test_registry_round_trip_jsonl_and_yaml(tmp_path: Path) -> None:
    entries, _ = simulated_agents([ORG], seed=0)
    for name in ("agents.jsonl", "agents.yaml"):
        save_agents(tmp_path / name, entries)
        assert list(load_agents(tmp_path / name).values()) == entries
    (tmp_path / "dup.jsonl").write_text(
        "\n".join([entries[0].model_dump_json()] * 2) + "\n")
    with pytest.raises(Exception, match="twice"):
        load_agents(tmp_path / "dup.jsonl")
    with pytest.raises(ValueError):
        AgentEntry(agent_id="x", establishment_id=ORG.id, public_key="AAAA")


def test_simulated_agents_are_deterministic_and_verify(registry: list[Organization]) -> None:
    orgs = registry[:5]
    entries, signers = simulated_agents(orgs, seed=0)
    again, _ = simulated_agents(orgs, seed=0)
    assert entries == again
    assert simulated_agents(orgs, seed=1)[0] != entries
    verifier = Verifier(entries)
    value = json.dumps({"x": 1}).encode()
    for org in orgs:
        assert verifier.verify(value, signers[org.id].headers(value), org.id) == f"sim-{org.id}"


def test_libsodium_signatures_are_the_openssl_ones() -> None:
    """The Signer signs small values with libsodium and envelopes with OpenSSL; Ed25519 is
    deterministic, so they agree, on both sides of the switch."""
    key = Ed25519PrivateKey.generate()
    signer = Signer("agent-x", key)
    sodium = SigningKey(key.private_bytes_raw())
    for value in (b"", b"{}", b'{"event": {"id": "e"}}' * 50, b"x" * 4000, b"y" * 4100,
                  b'{"event": {"id": "e"}}\n' * 20_000):
        message = signed_message(7, value)
        assert base64.b64decode(signer.signature(value, 7)) == \
            sodium.sign(message).signature == key.sign(message)


def test_the_sequence_is_signed_and_required(setup: tuple[Verifier, Signer, bytes]) -> None:
    """A replayer cannot give a captured record a fresh number, nor strip it."""
    verifier, signer, value = setup
    headers = dict(signer.headers(value, 41))
    assert verifier.verify(value, headers, ORG.id) == "chu-test-01"
    assert record_sequence(headers) == 41
    renumbered = {**headers, HEADER_SEQUENCE: b"42"}
    assert _refused(verifier, value, renumbered) is Reason.BAD_SIGNATURE
    unnumbered = {k: v for k, v in headers.items() if k != HEADER_SEQUENCE}
    assert _refused(verifier, value, unnumbered) is Reason.BAD_SIGNATURE
    for bad in (b"-1", b"4 1", b"", b"99999999999999999999", "٤١".encode()):
        assert record_sequence({**headers, HEADER_SEQUENCE: bad}) is None


def test_without_a_spool_numbers_rise_with_the_clock() -> None:
    """The simulator's numbers rise within a run and from one run to the next."""
    first, second = Signer("a", Ed25519PrivateKey.generate()), \
        Signer("a", Ed25519PrivateKey.generate())
    numbers = [int(dict(first.headers(b"{}"))[HEADER_SEQUENCE]) for _ in range(1000)]
    assert numbers == sorted(set(numbers))
    assert int(dict(second.headers(b"{}"))[HEADER_SEQUENCE]) >= numbers[-1]
