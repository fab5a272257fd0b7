"""The privacy policy, rule by rule: canonical forms, what is kept and why, free text,
default deny, overrides, the keyed event id and the dry run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from producers.agent.config import AgentConfig
from producers.agent.pipeline import Finisher
from producers.agent.preview import Preview
from producers.agent.privacy import POLICY, Pseudonymiser, Treatment
from producers.agent.privacy.policy import RAW_DATA_PREFIXES
from producers.agent.run import file_sources
from producers.agent.sources.base import Context
from producers.signing import Signer, generate_key

from .conftest import ORG

KEY = b"k" * 32
CORPUS = Path(__file__).resolve().parents[2] / "data" / "privacy"


@pytest.fixture()
def p() -> Pseudonymiser:
    return Pseudonymiser(KEY, internal_domains=["chu-exemple.local"],
                         patient_roots=["/srv/dpi/patients"])


# --- one person, one pseudonym -------------------------------------------------------------

def test_every_spelling_of_an_account_gives_one_pseudonym(p: Pseudonymiser) -> None:
    user = p.user("jdupont")
    assert p.user("JDupont") == p.user("JDUPONT") == user
    assert p.user("CHU\\jdupont").endswith("\\" + user)
    assert p.user("jdupont@chu-exemple.fr").startswith(user + "@")
    assert p.user("CHU\\jdupont") != user  # the domain stays, pseudonymised apart
    assert p.user("Jeanne MARTIN") == p.user("MARTIN Jeanne")  # a person's name, any order
    assert user != Pseudonymiser(b"x" * 32).user("jdupont")  # keyed


def test_a_local_account_s_domain_is_its_machine(p: Pseudonymiser) -> None:
    machine = p.host("PC-CARDIO-MARTIN.chu-exemple.local")
    assert p.host("pc-cardio-martin") == machine
    assert p.pseudonym("PC-CARDIO-MARTIN", Treatment.DOMAIN) == machine
    assert p.user("PC-CARDIO-MARTIN\\admin").startswith(machine + "\\")
    assert p.user("PC-CARDIO-MARTIN$") == machine + "$"  # its machine account


def test_what_names_no_one_is_kept_for_sigma(p: Pseudonymiser) -> None:
    for account in ("SYSTEM", "NT AUTHORITY\\SYSTEM", "ANONYMOUS LOGON", "-", "Administrator",
                    "Administrators", "krbtgt", "root"):
        assert p.user(account) == account
    assert p.user("CHU\\Administrator").endswith("\\Administrator")
    assert p.pseudonym("NT AUTHORITY", Treatment.DOMAIN) == "NT AUTHORITY"
    for sid in ("S-1-5-18", "S-1-5-32-544", "S-1-0-0", "S-1-5-21-1-2-3-500",
                "S-1-5-21-1-2-3-512"):
        assert p.sid(sid) == sid
    assert p.sid("S-1-5-21-1-2-3-1104").startswith("ps-sid-")


def test_addresses_and_dns_names(p: Pseudonymiser) -> None:
    assert p.pseudonym("10.1.2.3", Treatment.IP).startswith("fd")
    assert p.pseudonym("203.0.113.9", Treatment.IP) == "203.0.113.9"  # the other side
    assert p.pseudonym("127.0.0.1", Treatment.IP) == "127.0.0.1"  # everyone's loopback
    assert p.pseudonym("fd12:3456::7", Treatment.IP) != "fd12:3456::7"  # IPv6 unique-local
    assert p.dns("evil.example.com") == "evil.example.com"
    assert p.dns("srv-dpi-01") == p.host("SRV-DPI-01")
    assert p.dns("srv-dpi-01.chu-exemple.local") == p.host("srv-dpi-01") + ".chu-exemple.local"
    assert p.dns("pc-01.lan").startswith("ps-")  # a default internal suffix


# --- free text ------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "secret", "still"), [
    ("C:\\Users\\jdupont\\AppData\\Local\\Temp\\x.exe", "jdupont", "\\AppData\\Local\\Temp\\x.exe"),
    ("cd /home/jdupont && ls", "jdupont", "cd /home/ps-"),
    ("https://dpi/dossier?nom=MARTIN&prenom=Jeanne&ipp=8812345&page=2", "martin", "&page=2"),
    ("https://dpi/dossier?patient=MARTIN%20Jeanne", "jeanne", "?patient=ps-"),
    ("cp /srv/dpi/patients/DUPONT-12/cr.pdf /tmp", "dupont", ".pdf /tmp"),
    ("open C:\\Temp\\MARTIN_Jeanne_8812345.pdf", "8812345", "C:\\Temp\\ps-"),
    ("mail to jeanne.martin@chu-exemple.fr", "jeanne", "@chu-exemple.fr"),
    ("CN=Jeanne MARTIN,OU=Cardio", "martin", ",OU=Cardio"),
    ("authentication failure; ruser=jdupont rhost=pc-01", "jdupont", "authentication failure"),
    ("copy \\\\srv-dpi-01\\share\\a.txt", "srv-dpi-01", "\\share\\a.txt"),
    ("reg add HKU\\S-1-5-21-1-2-3-1104\\Software\\Run", "1104", "\\Software\\Run"),
    ("ping 192.168.1.77", "192.168.1.77", "ping fd"),
])
def test_structured_patterns_are_replaced(p: Pseudonymiser, text: str, secret: str,
                                          still: str) -> None:
    scrubbed = p.scrubber.scrub(text)
    assert secret not in scrubbed.lower() and still in scrubbed


def test_technical_text_is_left_for_detection(p: Pseudonymiser) -> None:
    for text in ("HKLM\\SAM\\SAM\\Domains\\Account\\Users\\Names\\hideme$\\(Default)",
                 "powershell.exe -nop -w hidden -enc SQBFAFgA", "\\\\127.0.0.1\\ADMIN$\\x",
                 "C:\\Users\\Public\\x.exe", "certutil -urlcache -f http://203.0.113.5/a"):
        assert p.scrubber.scrub(text) == text


def test_the_record_s_own_identities_are_replaced_in_its_message(p: Pseudonymiser) -> None:
    doc: dict[str, Any] = {
        "event": {"id": "a" * 32, "category": ["authentication"]},
        "message": "Failed password for JDupont from 10.20.30.40 on PC-URG-07",
        "user": {"name": "jdupont"}, "source": {"ip": "10.20.30.40"},
        "host": {"name": "pc-urg-07"}}
    p.apply(doc)
    assert doc["message"] == (f"Failed password for {doc['user']['name']} from "
                              f"{doc['source']['ip']} on {doc['host']['name']}")


# --- default deny ----------------------------------------------------------------------------

def test_unknown_fields_are_dropped_and_unknown_raw_text_scrubbed(p: Pseudonymiser) -> None:
    doc: dict[str, Any] = {
        "event": {"id": "a" * 32, "original": "jdupont logged on", "category": ["process"]},
        "related": {"user": ["jdupont"]}, "host": {"name": "pc-1", "mac": "00:11"},
        "user": {"name": "jdupont"},
        "winlog": {"channel": "X", "event_id": 1, "event_data": {
            "SomethingNew": "run by jdupont from C:\\Users\\jdupont", "Count": 3,
            "Nested": {"Deep": ["jdupont"]}}}}
    p.apply(doc)
    assert "related" not in doc and "mac" not in doc["host"] and "original" not in doc["event"]
    data = doc["winlog"]["event_data"]
    assert "jdupont" not in json.dumps(data) and data["Count"] == 3
    assert p.dropped == 2  # by default deny: related, host.mac (event.original: by the table)


def test_user_data_follows_the_event_data_rules(p: Pseudonymiser) -> None:
    doc = p.apply({"event": {"id": "a" * 32}, "winlog": {
        "channel": "Security", "event_id": 1102, "user_data": {
            "xml_name": "LogFileCleared", "SubjectUserName": "jdupont",
            "SubjectDomainName": "CHU", "SubjectLogonId": "0x3e7"}}})
    data = doc["winlog"]["user_data"]
    assert data["SubjectUserName"] == p.user("jdupont") and data["SubjectLogonId"] == "0x3e7"
    assert data["xml_name"] == "LogFileCleared"


def test_a_message_the_agent_did_not_understand_does_not_leave() -> None:
    doc = {"event": {"id": "a" * 32, "module": "syslog"}, "message": "MARTIN Jeanne admise"}
    assert "message" not in Pseudonymiser(KEY).apply(dict(doc))
    kept = Pseudonymiser(KEY, unparsed_messages="scrub").apply(dict(doc))
    assert "MARTIN" not in kept["message"] and kept["message"].endswith(" admise")


def test_overrides_change_a_field_s_treatment() -> None:
    p = Pseudonymiser(KEY, {"winlog.event_data.LogonType": "drop",
                            "winlog.event_data.TargetUserSid": "text"})  # legacy spelling
    doc = p.apply({"event": {"id": "a" * 32}, "winlog": {"channel": "Security", "event_id": 1,
                   "event_data": {"LogonType": "3", "TargetUserSid": "S-1-5-18"}}})
    assert doc["winlog"]["event_data"] == {"TargetUserSid": p.pseudonym("S-1-5-18", "hash")}
    with pytest.raises(ValueError, match="cannot be dropped"):
        Pseudonymiser(KEY, {"event.id": "drop"})


def test_every_field_the_parsers_produce_is_classified() -> None:
    """No field of any source falls to the default-deny rule by accident: each one the
    parsers produce on the corpus is in the DPO's table."""
    ctx = Context(ORG.id, "chu-test-01")
    files = sorted(p for p in CORPUS.iterdir() if p.suffix != ".frames")
    unlisted = set()

    def walk(node: dict[str, Any], prefix: tuple[str, ...]) -> None:
        for key, value in node.items():
            path = (*prefix, key)
            if path[:2] in RAW_DATA_PREFIXES:
                continue
            if isinstance(value, dict) and ".".join(path) not in POLICY:
                walk(value, path)
            elif ".".join(path) not in POLICY and path != ("event", "id"):
                unlisted.add(".".join(path))

    for source in file_sources(files, ctx):
        for doc in source.poll(1000):
            walk(doc, ())
    assert not unlisted


# --- event id ---------------------------------------------------------------------------------

def test_event_id_is_keyed_and_stable(key: Ed25519PrivateKey) -> None:
    def shipped_id(secret: bytes) -> str:
        doc = {"@timestamp": "2025-03-10T10:00:00Z", "event": {"id": "0123456789abcdef" * 2}}
        return Finisher(ORG, Signer("a", key), Pseudonymiser(secret)).value(doc)[0]

    assert shipped_id(KEY) == shipped_id(KEY)  # a replay: the same id (exactly-once)
    assert shipped_id(KEY) != shipped_id(b"x" * 32) != "0123456789abcdef" * 2
    assert len(shipped_id(KEY)) == 32 and int(shipped_id(KEY), 16) >= 0


# --- dry run ---------------------------------------------------------------------------------

def _config(tmp_path: Path) -> Path:
    generate_key(tmp_path / "agent.key")
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump({
        "establishment": ORG.model_dump(mode="json"), "agent_id": "chu-test-01",
        "key_path": "agent.key", "state_dir": str(tmp_path / "state"),
        "pseudonymise": {"patient_roots": ["/srv/dpi/patients"],
                         "overrides": {"winlog.event_data.Hashes": "drop"},
                         "extra_fields": {"winlog.event_data.Custom": "name"}}}))
    return path


def test_dry_run_without_a_key_pseudonymises_with_a_throwaway_one(tmp_path: Path) -> None:
    from producers.agent.config import load_config

    config: AgentConfig = load_config(_config(tmp_path))
    assert config.pseudonymise.all_overrides()["winlog.event_data.Custom"] is Treatment.USER
    preview = Preview(config)
    assert preview.notice and "throw-away" in preview.notice
    assert not config.pseudonym_key_path.exists()  # a dry run creates no key
    values = b"\n".join(preview.events([CORPUS / "auth.log"])).lower()
    assert b"jdupont" not in values and b"10.20.30.40" not in values
    assert Preview(None).notice


def test_dry_run_cli_says_so_and_shows_no_identity() -> None:
    from typer.testing import CliRunner

    from vigie.cli.agent import agent_app

    result = CliRunner().invoke(agent_app, ["ingest", "--dry-run", str(CORPUS / "auth.log")])
    assert result.exit_code == 0, result.output
    assert "throw-away key" in result.stderr
    assert "jdupont" not in result.stdout.lower() and result.stdout.count("{") >= 8
