"""Builders of simulated events, as the JSON agents put on ``events.raw``.

Windows events are made the way agents make them: a raw record (``winlog`` with the channel,
provider, event id and EventData a real Security or Sysmon record has), then the agents' own
Windows → ECS mapping (:mod:`producers.windows.ecs`); only the event id and the agent identity
are the simulator's. So the demo, the benchmarks and the detection tests see what agents ship
(``tests/unit/test_windows_ecs.py`` holds the two to it). Other sources (mail gateway, sshd,
firewall) have their ECS fields written here.

The simulator writes wire JSON directly rather than building pydantic objects: it is a load
generator and must outrun the pipeline it measures. Unit tests check that every record built
here validates as a ``SecurityEvent``.
"""

from __future__ import annotations

import random
import zlib
from datetime import datetime
from typing import Any

from producers.windows.ecs import (
    SECURITY_CHANNEL,
    SECURITY_PROVIDER,
    SYSMON_CHANNEL,
    SYSMON_PROVIDER,
    ecs_document,
)
from producers.windows.normalize import RawWinlog, WindowsEvent
from schemas.organization import Organization

Doc = dict[str, Any]

_STAFF = ("dupont", "martin", "bernard", "thomas", "petit", "robert", "richard", "durand")
_WORKSTATIONS = ("PC-URG", "PC-RADIO", "PC-ACCUEIL", "PC-BLOC", "PC-LABO", "PC-PHARMA")
_SERVERS = ("SRV-DPI-01", "SRV-PACS-01", "SRV-LABO-01", "SRV-AD-01")
_BENIGN_PROCESSES = (
    (r"C:\Program Files\Google\Chrome\Application\chrome.exe",
     r"C:\Program Files\Google\Chrome\Application\chrome.exe --type=renderer"),
    (r"C:\Program Files\Microsoft Office\root\Office16\OUTLOOK.EXE",
     r'"C:\Program Files\Microsoft Office\root\Office16\OUTLOOK.EXE"'),
    (r"C:\Program Files\DxCare\DxCare.exe", r'"C:\Program Files\DxCare\DxCare.exe" /site=1'),
    (r"C:\Windows\System32\notepad.exe", r'"C:\Windows\System32\notepad.exe"'),
)


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _agent(org: Organization) -> Doc:
    return {"id": f"sim-{org.id}", "type": "vigie-simulator", "version": "1"}


def base(org: Organization, when: datetime, event_id: str, **event: Any) -> Doc:
    """A non-Windows event (mail gateway, sshd, firewall), its ECS fields written here."""
    return {
        "@timestamp": iso(when),
        "event": {"id": event_id, **event},
        "organization": org.model_dump(mode="json"),
        "agent": _agent(org),
    }


def internal_ip(rng: random.Random) -> str:
    return f"10.{rng.randrange(1, 250)}.{rng.randrange(0, 250)}.{rng.randrange(2, 250)}"


def workstation(rng: random.Random) -> str:
    return f"{rng.choice(_WORKSTATIONS)}-{rng.randrange(1, 60):02d}"


def staff_user(rng: random.Random) -> str:
    return f"{rng.choice(_STAFF)}.{chr(97 + rng.randrange(26))}"


def windows_record(when: datetime, *, channel: str, provider: str, code: int, host: str,
                   record: int, data: dict[str, Any]) -> WindowsEvent:
    """A raw Windows record as Winlogbeat ships it (``@timestamp`` and ``winlog``), the
    EventData named as the real event names them: what an agent reads, before any mapping."""
    winlog: RawWinlog = {"channel": channel, "event_id": code, "provider_name": provider,
                         "computer_name": host, "record_id": record, "event_data": data}
    return {"@timestamp": iso(when), "winlog": winlog}


def shipped(org: Organization, record: WindowsEvent, event_id: str) -> Doc:
    """What an agent of ``org`` puts on ``events.raw`` for ``record``: the agents' own
    Windows → ECS mapping, with the simulator's event id and identity."""
    doc = ecs_document(record, event_id=event_id)
    doc["organization"] = org.model_dump(mode="json")
    doc["agent"] = _agent(org)
    return doc


def _pid(host: str, image: str) -> int:
    """A process id for ``image`` on ``host``, stable so that a child names its parent's id
    (Windows ids are multiples of 4)."""
    return 4 * (100 + zlib.crc32(f"{host}|{image}".lower().encode()) % 16_000)


def logon_record(when: datetime, *, success: bool, host: str, user: str, source_ip: str,
                 logon_type: int, record: int) -> WindowsEvent:
    """Security 4624 (success) or 4625 (failure), with the fields Sigma and ECS both use."""
    data: dict[str, Any] = {
        "TargetUserName": user,
        "TargetDomainName": "HOPITAL",
        "LogonType": str(logon_type),
        "IpAddress": source_ip,
        "IpPort": "0",
        "WorkstationName": host,
        "LogonProcessName": "NtLmSsp" if logon_type == 3 else "User32",
        "AuthenticationPackageName": "NTLM" if logon_type == 3 else "Negotiate",
    }
    if not success:
        data.update({"Status": "0xc000006d", "SubStatus": "0xc000006a", "FailureReason": "%%2313"})
    return windows_record(when, channel=SECURITY_CHANNEL, provider=SECURITY_PROVIDER,
                          code=4624 if success else 4625, host=host, record=record, data=data)


def process_record(when: datetime, *, host: str, user: str, image: str, command_line: str,
                   parent_image: str, record: int, sha256: str | None = None) -> WindowsEvent:
    """Sysmon event 1 (process creation), the main input of Sigma's process rules."""
    data: dict[str, Any] = {
        "ProcessId": str(_pid(host, image)),
        "Image": image,
        "OriginalFileName": image.rsplit("\\", 1)[-1].upper(),
        "CommandLine": command_line,
        "CurrentDirectory": "C:\\Windows\\system32\\",
        "User": f"HOPITAL\\{user}",
        "IntegrityLevel": "Medium",
        "ParentProcessId": str(_pid(host, parent_image)),
        "ParentImage": parent_image,
        "ParentCommandLine": parent_image,
    }
    if sha256:
        data["Hashes"] = f"SHA256={sha256.upper()}"
    return windows_record(when, channel=SYSMON_CHANNEL, provider=SYSMON_PROVIDER, code=1,
                          host=host, record=record, data=data)


def file_create_record(when: datetime, *, host: str, user: str, image: str, target: str,
                       record: int) -> WindowsEvent:
    """Sysmon event 11 (file created; ``User`` is reported since Sysmon 15). It carries no
    hash: Sysmon hashes the files a process runs (event 1), not the files it writes."""
    data = {"ProcessId": str(_pid(host, image)), "Image": image, "TargetFilename": target,
            "User": f"HOPITAL\\{user}"}
    return windows_record(when, channel=SYSMON_CHANNEL, provider=SYSMON_PROVIDER, code=11,
                          host=host, record=record, data=data)


def windows_logon(org: Organization, when: datetime, event_id: str, *, success: bool,
                  host: str, user: str, source_ip: str, logon_type: int, record: int) -> Doc:
    """A logon (:func:`logon_record`) as shipped."""
    return shipped(org, logon_record(when, success=success, host=host, user=user,
                                     source_ip=source_ip, logon_type=logon_type, record=record),
                   event_id)


def sysmon_process(org: Organization, when: datetime, event_id: str, *, host: str, user: str,
                   image: str, command_line: str, parent_image: str, record: int,
                   sha256: str | None = None) -> Doc:
    """A process creation (:func:`process_record`) as shipped."""
    return shipped(org, process_record(when, host=host, user=user, image=image,
                                       command_line=command_line, parent_image=parent_image,
                                       record=record, sha256=sha256), event_id)


def sysmon_file_create(org: Organization, when: datetime, event_id: str, *, host: str,
                       user: str, image: str, target: str, record: int) -> Doc:
    """A file creation (:func:`file_create_record`) as shipped."""
    return shipped(org, file_create_record(when, host=host, user=user, image=image,
                                           target=target, record=record), event_id)


def email_received(org: Organization, when: datetime, event_id: str, *, sender: str,
                   recipient: str, subject: str, url_domain: str, attachment_sha256: str) -> Doc:
    """A mail gateway's delivery log (ECS email.*)."""
    doc = base(org, when, event_id, category=["email"], type=["info"], action="delivered",
               provider="mail-gateway", module="mail")
    doc |= {
        "email": {"from": {"address": [sender]}, "to": {"address": [recipient]},
                  "subject": subject},
        "url": {"domain": url_domain},
        "file": {"name": "facture.docm", "hash": {"sha256": attachment_sha256}},
        "observer": {"type": "mail-gateway", "vendor": "Vigie-sim", "product": "relay"},
    }
    return doc


def benign(org: Organization, when: datetime, event_id: str, rng: random.Random,
           record: int) -> Doc:
    """One ordinary event: a logon, a program started, an SSH session, a firewall flow."""
    pick = rng.random()
    host = workstation(rng)
    user = staff_user(rng)
    if pick < 0.35:
        return windows_logon(org, when, event_id, success=True, host=host, user=user,
                             source_ip=internal_ip(rng), logon_type=2, record=record)
    if pick < 0.65:
        image, cmd = rng.choice(_BENIGN_PROCESSES)
        return sysmon_process(org, when, event_id, host=host, user=user, image=image,
                              command_line=cmd, parent_image=r"C:\Windows\explorer.exe",
                              record=record)
    if pick < 0.8:
        server = rng.choice(_SERVERS).lower()
        doc = base(org, when, event_id, category=["authentication"], type=["start"],
                   action="ssh_login", outcome="success", provider="sshd", module="system",
                   dataset="system.auth")
        ip = internal_ip(rng)
        doc |= {"host": {"name": server}, "user": {"name": "exploit"},
                "source": {"ip": ip, "port": rng.randrange(1024, 65535)},
                "message": f"Accepted publickey for exploit from {ip} port 51234 ssh2"}
        return doc
    doc = base(org, when, event_id, category=["network"], type=["connection", "allowed"],
               action="accept", outcome="success", provider="firewall", module="cef")
    doc |= {"source": {"ip": internal_ip(rng), "port": rng.randrange(1024, 65535)},
            "destination": {"ip": internal_ip(rng), "port": rng.choice((443, 445, 3389, 104))},
            "network": {"transport": "tcp", "direction": "internal"},
            "observer": {"type": "firewall", "vendor": "Stormshield", "product": "SNS"}}
    return doc
