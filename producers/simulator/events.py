"""Builders of simulated events, as the JSON agents put on ``events.raw``.

The simulator writes wire JSON directly rather than building pydantic objects: it is a load
generator and must outrun the pipeline it measures. Unit tests check that every record built
here validates as a ``SecurityEvent``.
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

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


def base(org: Organization, when: datetime, event_id: str, **event: Any) -> Doc:
    return {
        "@timestamp": iso(when),
        "event": {"id": event_id, **event},
        "organization": org.model_dump(mode="json"),
        "agent": {"id": f"sim-{org.id}", "type": "vigie-simulator", "version": "1"},
    }


def internal_ip(rng: random.Random) -> str:
    return f"10.{rng.randrange(1, 250)}.{rng.randrange(0, 250)}.{rng.randrange(2, 250)}"


def workstation(rng: random.Random) -> str:
    return f"{rng.choice(_WORKSTATIONS)}-{rng.randrange(1, 60):02d}"


def staff_user(rng: random.Random) -> str:
    return f"{rng.choice(_STAFF)}.{chr(97 + rng.randrange(26))}"


def windows_logon(org: Organization, when: datetime, event_id: str, *, success: bool,
                  host: str, user: str, source_ip: str, logon_type: int, record: int) -> Doc:
    """Security 4624 (success) or 4625 (failure), with the fields Sigma and ECS both use."""
    code = 4624 if success else 4625
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
    doc = base(org, when, event_id, kind="event", category=["authentication"],
               type=["start"], action="logged-in" if success else "logon-failed",
               outcome="success" if success else "failure", code=str(code),
               provider="Microsoft-Windows-Security-Auditing", module="windows")
    doc |= {
        "host": {"name": host},
        "user": {"name": user, "domain": "HOPITAL"},
        "source": {"ip": source_ip},
        "winlog": {"channel": "Security", "event_id": code, "record_id": record,
                   "provider_name": "Microsoft-Windows-Security-Auditing",
                   "computer_name": host, "event_data": data},
    }
    return doc


def sysmon_process(org: Organization, when: datetime, event_id: str, *, host: str, user: str,
                   image: str, command_line: str, parent_image: str, record: int,
                   sha256: str | None = None) -> Doc:
    """Sysmon event 1 (process creation), the main input of Sigma's process rules."""
    name = image.rsplit("\\", 1)[-1]
    data: dict[str, Any] = {
        "Image": image,
        "CommandLine": command_line,
        "ParentImage": parent_image,
        "ParentCommandLine": parent_image,
        "User": f"HOPITAL\\{user}",
        "OriginalFileName": name.upper(),
        "IntegrityLevel": "Medium",
        "CurrentDirectory": "C:\\Windows\\system32\\",
    }
    process: Doc = {"name": name, "executable": image, "command_line": command_line,
                    "parent": {"executable": parent_image,
                               "name": parent_image.rsplit("\\", 1)[-1]}}
    if sha256:
        data["Hashes"] = f"SHA256={sha256.upper()}"
        process["hash"] = {"sha256": sha256}
    doc = base(org, when, event_id, category=["process"], type=["start"],
               action="Process Create (rule: ProcessCreate)", code="1",
               provider="Microsoft-Windows-Sysmon", module="sysmon")
    doc |= {
        "host": {"name": host},
        "user": {"name": user, "domain": "HOPITAL"},
        "process": process,
        "winlog": {"channel": "Microsoft-Windows-Sysmon/Operational", "event_id": 1,
                   "record_id": record, "provider_name": "Microsoft-Windows-Sysmon",
                   "computer_name": host, "event_data": data},
    }
    return doc


def sysmon_file_create(org: Organization, when: datetime, event_id: str, *, host: str,
                       user: str, image: str, target: str, record: int, sha256: str) -> Doc:
    """Sysmon event 11 (file created; ``User`` is reported since Sysmon 15)."""
    doc = base(org, when, event_id, category=["file"], type=["creation"],
               action="File created (rule: FileCreate)", code="11",
               provider="Microsoft-Windows-Sysmon", module="sysmon")
    doc |= {
        "host": {"name": host},
        "user": {"name": user, "domain": "HOPITAL"},
        "file": {"path": target, "name": target.rsplit("\\", 1)[-1],
                 "hash": {"sha256": sha256}},
        "process": {"executable": image},
        "winlog": {"channel": "Microsoft-Windows-Sysmon/Operational", "event_id": 11,
                   "record_id": record, "provider_name": "Microsoft-Windows-Sysmon",
                   "computer_name": host,
                   "event_data": {"Image": image, "TargetFilename": target,
                                  "User": f"HOPITAL\\{user}"}},
    }
    return doc


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
