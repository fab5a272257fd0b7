"""Must-show: nothing personal leaves. A corpus seeded with known names, host names, private
addresses and patient-like strings (``tests/data/privacy/``: auth.log, syslog RFC 3164 and
5424, CEF, Winlogbeat JSON of Security and Sysmon events, the XML-JSON export of an EVTX
record) goes through the agent's own sources, pseudonymisation, spool and signing; none of
the seeded strings is anywhere in the bytes a Kafka record would carry (key, value,
headers), in any case, URL-encoded or in UTF-16; and one person, one machine has one
pseudonym in every field of every source.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from producers.agent.pipeline import Finisher
from producers.agent.privacy import Pseudonymiser
from producers.agent.run import file_sources
from producers.agent.sources.base import Context, Source
from producers.agent.sources.syslog import SyslogServer, SyslogSource
from producers.agent.spool import Spool
from producers.signing import Signer

from .conftest import ORG

CORPUS = Path(__file__).resolve().parents[2] / "data" / "privacy"
KEY = bytes(range(32))

#: What must never leave: people, accounts, machines, internal addresses, a patient's IPP.
SEEDED = (
    "MARTIN", "Jeanne", "jdupont", "DUPONT", "jeanne.martin", "PC-CARDIO-MARTIN",
    "pc-cardio-martin", "FW-URGENCES-MARTIN", "srv-dpi-01", "10.20.30.40", "192.168.1.77",
    "172.16.5.9", "8812345", "S-1-5-21-1111111111-2222222222-3333333333-1104",
    "S-1-5-21-1111111111-2222222222-3333333333-1105",
)


def _pseudonymiser() -> Pseudonymiser:
    return Pseudonymiser(KEY, internal_domains=["chu-exemple.local"],
                         patient_roots=["/srv/dpi/patients", "\\\\srv-dpi-01\\patients"])


def _syslog_source(ctx: Context) -> SyslogSource:
    """The syslog listener's source, fed the frames it would read off the network."""
    server = SyslogServer("net", "udp", "127.0.0.1", 0, ctx)
    received = datetime(2025, 3, 10, 11, 5, tzinfo=UTC)
    for line in (CORPUS / "syslog.frames").read_bytes().splitlines():
        server.frames.put_nowait((line, received, "10.20.30.40:514"))
    return SyslogSource(server)


def _kafka_records(tmp_path: Path) -> Iterator[tuple[str, bytes, bytes, list[tuple[str, bytes]]]]:
    """(source, key, value, headers) of every record, as the shipper would hand them to
    Kafka: documents from the agent's sources, finished (pseudonymised, keyed id), spooled,
    read back from the spool and signed with their spool number."""
    ctx = Context(ORG.id, "chu-test-01")
    signer = Signer("chu-test-01", Ed25519PrivateKey.generate())
    finisher = Finisher(ORG, signer, _pseudonymiser())
    files = [CORPUS / name for name in ("auth.log", "firewall.cef", "winlogbeat.jsonl",
                                        "windows-export.json")]
    sources: list[Source] = [*file_sources(files, ctx), _syslog_source(ctx)]
    spool = Spool(tmp_path / "spool", fsync=False)
    names = []
    for source in sources:
        docs = source.poll(1000)
        assert docs, f"{source.name}: no event read"
        spool.append([finisher.record(doc, source.name) for doc in docs])
        names += [source.name] * len(docs)
        source.close()
    assert not ctx.malformed, ctx.malformed
    records = spool.read(10_000)
    assert len(records) == len(names)
    for name, record in zip(names, records, strict=True):
        yield name, record.key, record.value, signer.headers(record.value, record.seq)
    spool.close()


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, bytes, bytes,
                                                                    list[tuple[str, bytes]]]]:
    return list(_kafka_records(tmp_path_factory.mktemp("privacy")))


def _forms(secret: str) -> set[bytes]:
    """The spellings in which a secret could hide in bytes."""
    out = set()
    for text in (secret, secret.lower(), secret.upper()):
        for form in (text, quote(text), quote_plus(text), quote(text, safe="")):
            out.add(form.encode().lower())
            out.add(form.encode("utf-16-le").lower())
    return out


def test_corpus_covers_every_source(shipped: list[Any]) -> None:
    modules = {json.loads(value)["event"]["module"] for _s, _k, value, _h in shipped}
    assert {"system", "syslog", "cef", "windows"} <= modules
    rfcs = (CORPUS / "syslog.frames").read_text()
    assert "<86>1 " in rfcs and "<38>Mar" in rfcs  # RFC 5424 and RFC 3164
    assert len(shipped) == 24  # every record of the corpus, none lost to the policy


def test_no_seeded_string_reaches_kafka(shipped: list[Any]) -> None:
    leaks = []
    for source, key, value, headers in shipped:
        wire = b"\n".join([key, value, *(k.encode() + b"=" + v for k, v in headers)]).lower()
        for secret in SEEDED:
            if any(form in wire for form in _forms(secret)):
                leaks.append(f"{source}: {secret!r} in {value[:400]!r}")
    assert not leaks, "\n".join(leaks)


def test_the_corpus_really_carries_the_secrets() -> None:
    """The test above could pass on an empty corpus: every seeded string is in the input."""
    raw = b"\n".join(p.read_bytes() for p in CORPUS.iterdir()).lower()
    for secret in SEEDED:
        assert secret.lower().encode() in raw or secret.lower().replace(
            "\\", "\\\\").encode() in raw, secret


def _values(doc: Any) -> Iterator[str]:
    if isinstance(doc, dict):
        for item in doc.values():
            yield from _values(item)
    elif isinstance(doc, list):
        for item in doc:
            yield from _values(item)
    elif isinstance(doc, str):
        yield doc


def test_one_person_one_pseudonym_in_every_field_and_source(shipped: list[Any]) -> None:
    p = _pseudonymiser()
    jdupont, machine = p.user("jdupont"), p.host("PC-CARDIO-MARTIN")
    docs = [(source, json.loads(value)) for source, _k, value, _h in shipped]
    # The account, however it was written, in user.name of every source...
    carriers = {source.split("-")[0] for source, d in docs
                if d.get("user", {}).get("name") == jdupont}
    assert {"ingest0", "ingest1", "ingest2", "ingest3", "net"} <= carriers
    # ... and inside free text, paths and raw fields of each source.
    texts: dict[str, str] = {}
    for source, d in docs:
        key = source.split("-")[0]
        texts[key] = texts.get(key, "") + " " + " ".join(_values(d))
    every = " ".join(texts.values())
    assert all(jdupont in text for text in texts.values())
    for spelling in ("CHU\\jdupont", "CHU\\JDupont", "JDUPONT", "jdupont@chu-exemple.fr"):
        assert jdupont in p.user(spelling)
    assert f"\\Users\\{jdupont}\\" in every and f"/home/{jdupont}" in every
    assert f"user={jdupont}" in every  # pam_unix's key=value
    # One machine: its FQDN, its NetBIOS name, a local account's domain, a syslog host.
    assert machine in texts["ingest2"] and machine in texts["ingest1"]
    logon = next(d for _s, d in docs if d.get("winlog", {}).get("record_id") == 1002)
    data = logon["winlog"]["event_data"]
    assert data["TargetDomainName"] == data["WorkstationName"] == machine
    assert logon["winlog"]["computer_name"] == logon["host"]["name"] == machine
    assert data["SubjectUserName"] == machine + "$"  # its machine account, still one
    # One patient: the same pseudonym in a URL, a CEF message and a document name.
    patient = p.user("MARTIN Jeanne")
    assert patient == p.user("Jeanne MARTIN") == p.user("MARTIN_Jeanne".replace("_", " "))
    assert patient in texts["ingest1"] and patient in texts["ingest2"]


def test_what_detection_needs_is_still_there(shipped: list[Any]) -> None:
    docs = [json.loads(value) for _s, _k, value, _h in shipped]
    by_record = {d["winlog"]["record_id"]: d for d in docs if "winlog" in d}
    failed = by_record[1001]
    assert failed["winlog"]["event_data"]["LogonType"] == "3"
    assert failed["winlog"]["event_data"]["Status"] == "0xc000006d"
    assert failed["event"]["outcome"] == "failure"
    sysmon = by_record[1004]["winlog"]["event_data"]
    assert sysmon["Image"].endswith("\\powershell.exe")
    assert "-nop -w hidden" in sysmon["CommandLine"] and "\\AppData\\" not in sysmon["Image"]
    assert by_record[1003]["winlog"]["event_data"]["NewProcessName"].endswith(
        "\\AppData\\Local\\Temp\\lecteur.exe")
    group = by_record[1008]["winlog"]["event_data"]
    assert group["TargetUserName"] == "Administrators" and group["TargetSid"] == "S-1-5-32-544"
    assert by_record[1007]["winlog"]["event_data"]["SubjectUserSid"].endswith("-500")
    public = [d for d in docs if d.get("destination", {}).get("ip") == "203.0.113.50"]
    assert public, "public addresses (the other side) are kept"
    assert all("original" not in d["event"] for d in docs)
