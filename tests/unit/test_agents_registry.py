"""The agents registry's rules (one key one agent, permanent revocations, audit), the fold every
processor worker applies to the registry topic, and what the processor trusts (demo mode,
signatures off). Pure logic: no Kafka."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from processors import trust
from processors.validate import Refused
from processors.verify import Verifier
from producers.signing import Signer, public_key_b64
from producers.simulator.fleet import agent_id_for, simulated_agents
from runtime import metrics
from runtime.agents_registry import (
    AgentsRegistryError,
    AgentsState,
    enrolment,
    import_changes,
    revocation,
    save_agents,
)
from runtime.agents_store import FileStore, enroll, import_file, revoke
from runtime.settings import SettingsError, load_settings
from schemas.deadletter import Reason
from schemas.enrolment import AgentAction, AgentEntry, AgentStatus
from schemas.organization import Organization
from schemas.topics import Topic

NOW = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
ORG_A, ORG_B = "750712184", "130000001"


def _key() -> str:
    return public_key_b64(Ed25519PrivateKey.generate())


def _enrolled(agents: dict[str, AgentEntry], agent_id: str, org: str, key: str) -> None:
    change = enrolment(agents, agent_id, org, key, actor="alice@soc", reason="new server",
                       at=NOW)
    agents[agent_id] = change.entry


# ---------------------------------------------------------------- writers' rules
def test_a_key_already_enrolled_is_refused_naming_its_agent() -> None:
    agents: dict[str, AgentEntry] = {}
    key = _key()
    _enrolled(agents, "chu-a-01", ORG_A, key)
    with pytest.raises(AgentsRegistryError, match=r"already enrolled as agent chu-a-01 "
                       r"\(establishment 750712184\); one key, one agent"):
        enrolment(agents, "clinique-b-01", ORG_B, key, actor="x", reason="y", at=NOW)


def test_revocations_are_permanent_for_the_id_and_the_key() -> None:
    agents: dict[str, AgentEntry] = {}
    key = _key()
    _enrolled(agents, "chu-a-01", ORG_A, key)
    change = revocation(agents, "chu-a-01", actor="bob@soc", reason="key stolen", at=NOW)
    agents["chu-a-01"] = change.entry
    assert (change.action, change.actor, change.reason) == (AgentAction.REVOKED, "bob@soc",
                                                            "key stolen")
    assert (change.entry.status, change.entry.revoked_at, change.entry.revoked_by,
            change.entry.revoked_reason) == (AgentStatus.REVOKED, NOW, "bob@soc", "key stolen")
    assert change.entry.enrolled_by == "alice@soc"  # the entry keeps its whole life
    with pytest.raises(AgentsRegistryError, match="revocations are permanent"):
        enrolment(agents, "chu-a-01", ORG_A, _key(), actor="x", reason="y", at=NOW)
    with pytest.raises(AgentsRegistryError, match=r"revoked with agent chu-a-01 .*key stolen"):
        enrolment(agents, "chu-a-02", ORG_A, key, actor="x", reason="y", at=NOW)
    with pytest.raises(AgentsRegistryError, match="already revoked"):
        revocation(agents, "chu-a-01", actor="x", reason="again", at=NOW)
    # the replacement server: a new key under a new id
    _enrolled(agents, "chu-a-02", ORG_A, _key())


def test_a_revocation_needs_a_reason_and_a_known_agent() -> None:
    agents: dict[str, AgentEntry] = {}
    _enrolled(agents, "chu-a-01", ORG_A, _key())
    with pytest.raises(AgentsRegistryError, match="needs a reason"):
        revocation(agents, "chu-a-01", actor="x", reason=" ", at=NOW)
    with pytest.raises(AgentsRegistryError, match="no agent nobody"):
        revocation(agents, "nobody", actor="x", reason="r", at=NOW)


def test_import_is_all_or_nothing_and_keeps_revocations(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "live.jsonl")
    kept, stolen, gone = _key(), _key(), _key()
    enroll(store, "chu-a-01", ORG_A, kept, actor="alice", reason="r")
    enroll(store, "chu-a-02", ORG_A, stolen, actor="alice", reason="r")
    old = [
        AgentEntry(agent_id="chu-a-01", establishment_id=ORG_A, public_key=kept),  # same
        AgentEntry(agent_id="chu-a-02", establishment_id=ORG_A, public_key=stolen,
                   status=AgentStatus.REVOKED, revoked_at=NOW),  # revoked since
        AgentEntry(agent_id="chu-a-03", establishment_id=ORG_A, public_key=gone,
                   status=AgentStatus.REVOKED, revoked_at=NOW),  # unknown, revoked
        AgentEntry(agent_id="clinique-b-01", establishment_id=ORG_B, public_key=_key()),
    ]
    save_agents(tmp_path / "old.yaml", old)
    changes = import_file(store, tmp_path / "old.yaml", actor="carol", reason="migration")
    assert [(c.agent_id, c.action) for c in changes] == [
        ("chu-a-02", AgentAction.REVOKED), ("chu-a-03", AgentAction.REVOKED),
        ("clinique-b-01", AgentAction.ENROLLED)]
    live = store.entries()
    assert live["chu-a-02"].revoked_reason == "migration"
    assert live["chu-a-02"].enrolled_by == "alice"
    # a file that would re-activate a revoked agent is refused whole: nothing written
    before = (tmp_path / "live.jsonl").read_bytes()
    bad = [AgentEntry(agent_id="clinique-b-02", establishment_id=ORG_B, public_key=_key()),
           AgentEntry(agent_id="chu-a-02", establishment_id=ORG_A, public_key=stolen)]
    save_agents(tmp_path / "bad.jsonl", bad)
    with pytest.raises(AgentsRegistryError, match=r"bad.jsonl: chu-a-02: agent chu-a-02 was "
                       r"revoked"):
        import_file(store, tmp_path / "bad.jsonl", actor="carol", reason="again")
    assert (tmp_path / "live.jsonl").read_bytes() == before
    # two entries of the file sharing a key: the second is refused
    shared = _key()
    with pytest.raises(AgentsRegistryError, match="one key, one agent"):
        import_changes({}, [AgentEntry(agent_id="a", establishment_id=ORG_A, public_key=shared),
                            AgentEntry(agent_id="b", establishment_id=ORG_B, public_key=shared)],
                       actor="x", reason="y", at=NOW)


def test_revoke_through_a_store_keeps_who_and_why(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "agents.jsonl")
    enroll(store, "chu-a-01", ORG_A, _key(), actor="alice", reason="r")
    revoke(store, "chu-a-01", actor="bob", reason="server retired")
    entry = FileStore(tmp_path / "agents.jsonl").entries()["chu-a-01"]
    assert (entry.status, entry.revoked_by, entry.revoked_reason) == (
        AgentStatus.REVOKED, "bob", "server retired")


# ---------------------------------------------------------------- readers' fold
def _record(entry: AgentEntry) -> bytes:
    return entry.model_dump_json(exclude_none=True).encode()


def _entry(agent_id: str, key: str, org: str = ORG_A, **extra: object) -> AgentEntry:
    return AgentEntry(agent_id=agent_id, establishment_id=org, public_key=key, **extra)


def test_fold_applies_a_revocation_and_ignores_a_reactivation() -> None:
    state = AgentsState()
    key = _key()
    state.apply("chu-a-01", _record(_entry("chu-a-01", key)))
    assert state.trusted["chu-a-01"].status is AgentStatus.ACTIVE
    state.apply("chu-a-01", _record(_entry("chu-a-01", key, status=AgentStatus.REVOKED,
                                           revoked_at=NOW, revoked_reason="stolen")))
    assert state.trusted["chu-a-01"].status is AgentStatus.REVOKED
    state.apply("chu-a-01", _record(_entry("chu-a-01", key)))  # behind the CLI's back
    assert state.trusted["chu-a-01"].status is AgentStatus.REVOKED
    state.apply("chu-a-01", None)  # tombstone, then re-activation: still never trusted
    state.apply("chu-a-01", _record(_entry("chu-a-01", key)))
    assert "chu-a-01" not in state.trusted
    state.apply("chu-a-09", _record(_entry("chu-a-09", key)))  # the revoked key, new id
    assert "chu-a-09" not in state.trusted


@pytest.mark.parametrize("order", [("a", "b"), ("b", "a")])
def test_fold_trusts_no_agent_of_a_shared_key_whatever_the_order(
        order: tuple[str, str]) -> None:
    state = AgentsState()
    shared, own = _key(), _key()
    state.apply("c", _record(_entry("c", own)))
    for agent_id in order:
        state.apply(agent_id, _record(_entry(agent_id, shared)))
    assert set(state.trusted) == {"c"}
    state.apply("b", _record(_entry("b", _key())))  # b gets its own key: a is alone again
    assert set(state.trusted) == {"a", "b", "c"}


def test_fold_distrusts_an_unreadable_or_misfiled_entry() -> None:
    state = AgentsState()
    state.apply("chu-a-01", _record(_entry("chu-a-01", _key())))
    state.apply("chu-a-01", b'{"agent_id": "chu-a-01", "status": "revo')
    assert "chu-a-01" not in state.trusted
    state.apply("chu-a-02", _record(_entry("chu-a-02", _key())))
    state.apply("chu-a-02", _record(_entry("other", _key())))
    assert "chu-a-02" not in state.trusted and "other" not in state.trusted


def test_a_revocation_reaches_a_running_verifier_on_its_next_record() -> None:
    """The Verifier reads the follower's live mapping: no copy, no key cached by agent id."""
    key = Ed25519PrivateKey.generate()
    state = AgentsState()
    state.apply("chu-a-01", _record(_entry("chu-a-01", public_key_b64(key))))
    verifier = Verifier(state.trusted)
    signer = Signer("chu-a-01", key)
    value = json.dumps({"x": 1}).encode()
    assert verifier.verify(value, signer.headers(value), ORG_A) == "chu-a-01"
    state.apply("chu-a-01", _record(_entry("chu-a-01", public_key_b64(key),
                                           status=AgentStatus.REVOKED, revoked_at=NOW,
                                           revoked_reason="key stolen")))
    with pytest.raises(Refused) as refused:
        verifier.verify(value, signer.headers(value), ORG_A)
    assert refused.value.reason is Reason.REVOKED_AGENT
    assert "key stolen" in refused.value.detail


# ---------------------------------------------------------------- demo mode
def test_simulated_agents_are_trusted_only_in_demo_mode(registry: list[Organization]) -> None:
    org = registry[0]
    entries, signers = simulated_agents([org])
    production, simulated = AgentsState("production"), AgentsState("simulated")
    for entry in entries:
        simulated.apply(entry.agent_id, _record(entry))
    value = json.dumps({"x": 1}).encode()
    headers = signers[org.id].headers(value)
    with pytest.raises(Refused) as refused:  # not in demo mode: production only
        Verifier(production.trusted).verify(value, headers, org.id)
    assert refused.value.reason is Reason.UNKNOWN_AGENT
    demo = Verifier(trust.TrustedAgents(production, simulated).view)
    assert demo.verify(value, headers, org.id) == agent_id_for(org.id)
    # a production entry of the same id wins (here: revoked)
    sim_entry = entries[0]
    production.apply(sim_entry.agent_id, _record(sim_entry.model_copy(update={
        "status": AgentStatus.REVOKED, "revoked_at": NOW})))
    with pytest.raises(Refused) as refused:
        demo.verify(value, headers, org.id)
    assert refused.value.reason is Reason.REVOKED_AGENT


def test_signatures_off_is_refused_outside_demo_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match="require_signatures=false is refused outside "
                       "demo mode"):
        load_settings(require_signatures=False)
    monkeypatch.setenv("VIGIE_REQUIRE_SIGNATURES", "false")
    with pytest.raises(SettingsError, match="outside demo mode"):
        load_settings()
    monkeypatch.setenv("VIGIE_DEMO_MODE", "true")
    assert load_settings().require_signatures is False


def test_the_old_agents_registry_setting_points_to_import(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIE_AGENTS_REGISTRY", "/x/agents.jsonl")
    with pytest.raises(SettingsError, match=r"VIGIE_AGENTS_REGISTRY \(removed: .*vigie agents "
                       r"import FILE"):
        load_settings()


def test_demo_mode_and_signatures_off_say_so(monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(trust, "SIGNATURES_OFF_WARNING_S", 0.05)
    caplog.set_level(logging.WARNING, logger="processors.trust")
    stop = trust.announce(load_settings(demo_mode=True, require_signatures=False))
    try:
        time.sleep(0.3)
    finally:
        stop.set()
    assert metrics.DEMO_MODE._value.get() == 1
    assert metrics.SIGNATURES_REQUIRED._value.get() == 0
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("DEMO MODE: simulated agents") for m in messages)
    assert sum("signature verification is OFF" in m for m in messages) >= 3  # start + repeats
    trust.announce(load_settings()).set()
    assert metrics.DEMO_MODE._value.get() == 0
    assert metrics.SIGNATURES_REQUIRED._value.get() == 1


# ---------------------------------------------------------------- the follower (fake Kafka)
class _Message:
    def __init__(self, topic: str, offset: int, key: bytes, value: bytes | None) -> None:
        self._topic, self._offset, self._key, self._value = topic, offset, key, value

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes | None:
        return self._value


class _Consumer:
    """One partition of ``vigie.agents``; records appended by the test arrive on poll."""

    def __init__(self, records: list[_Message]) -> None:
        self.records = records
        self.next = 0
        self.closed = False

    def poll(self, timeout: float) -> _Message | None:
        if self.next < len(self.records):
            self.next += 1
            return self.records[self.next - 1]
        time.sleep(min(timeout, 0.01))
        return None

    def position(self, partitions: list[object]) -> list[object]:
        return []

    def close(self) -> None:
        self.closed = True


def test_the_follower_reads_to_the_end_first_then_applies_changes_live(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from runtime import agents_topic
    from schemas.topics import AGENTS

    key = _key()
    records = [_Message(AGENTS.name, n, f"a{n}".encode(), _record(_entry(f"a{n}", _key())))
               for n in range(50)]
    records.append(_Message(AGENTS.name, 50, b"chu", _record(_entry("chu", key))))
    consumer = _Consumer(records)
    monkeypatch.setattr(agents_topic, "_consumer", lambda kafka: consumer)
    monkeypatch.setattr(agents_topic, "_assign_from_start",
                        lambda consumer, topics, timeout: {(AGENTS.name, 0): 51})
    state = AgentsState()
    changes: list[int] = []
    follower = agents_topic.AgentsFollower(
        load_settings().kafka, [(AGENTS, state)], on_change=lambda: changes.append(1)).start()
    try:
        assert len(state.trusted) == 51  # all of it before start() returned
        records.append(_Message(AGENTS.name, 51, b"chu", _record(_entry(
            "chu", key, status=AgentStatus.REVOKED, revoked_at=NOW))))
        deadline = time.monotonic() + 5
        while state.trusted["chu"].status is not AgentStatus.REVOKED:
            assert time.monotonic() < deadline, "the revocation was never applied"
            time.sleep(0.01)
        while len(changes) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(changes) == 2  # after the first read, then once for the live change
    finally:
        follower.stop()
    assert consumer.closed


@pytest.mark.parametrize("demo", [False, True])
def test_the_processor_follows_the_simulated_registry_only_in_demo_mode(
        demo: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    followed: list[str] = []

    class Follower:
        def __init__(self, kafka: object, states: list[tuple[Topic, AgentsState]],
                     on_change: object = None) -> None:
            followed.extend(topic.name for topic, _ in states)

        def start(self, timeout: float = 60.0) -> Follower:
            return self

    monkeypatch.setattr(trust, "AgentsFollower", Follower)
    verifier = trust.agents_verifier(load_settings(demo_mode=demo))
    assert verifier is not None
    assert followed == (["vigie.agents", "vigie.agents.simulated"] if demo
                        else ["vigie.agents"])
    assert metrics.DEMO_MODE._value.get() == (1 if demo else 0)
