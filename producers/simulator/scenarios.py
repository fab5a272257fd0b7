"""Scripted attacks, mixed into the background with their ground truth.

Each scenario is what a CERT Santé analyst has seen hit hospitals: a password guessed on an
exposed server, ransomware spreading over a few hosts of one establishment, one phishing
campaign mailing several establishments at once. The attack events are real Windows and
Sysmon shapes so that the SigmaHQ rules fire on them as they would on a real network.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from producers.simulator import events as ev
from schemas.identity import event_id, national_event_id
from schemas.organization import Organization

Builder = Callable[[datetime], dict[str, Any]]
Step = Callable[[datetime, str], dict[str, Any]]
"""An event builder waiting for its time and its event id."""


def _with_id(step: Step, eid: str) -> Builder:
    """``step`` with its event id bound: planned ids are known before times are."""
    def build(when: datetime) -> dict[str, Any]:
        return step(when, eid)
    return build


@dataclass
class Planned:
    """An attack event to emit at ``fraction`` of the run, built when its time is known."""

    fraction: float
    build: Builder
    event_id: str
    establishment_id: str

    @property
    def document_id(self) -> str:
        """The national id the processor gives the event (``schemas.identity``)."""
        return national_event_id(self.establishment_id, self.event_id)


@dataclass
class ScenarioInstance:
    """One scripted attack and the truth ``vigie evaluate`` will hold the pipeline to."""

    scenario: str
    instance: str
    establishments: list[str]
    hosts: list[str]
    indicator: str
    planned: list[Planned] = field(default_factory=list)

    def truth(self) -> dict[str, Any]:
        return {
            "kind": "scenario",
            "scenario": self.scenario,
            "instance": self.instance,
            "establishments": self.establishments,
            "hosts": self.hosts,
            "indicator": self.indicator,
            # National ids: what detections and incidents point to.
            "event_ids": [p.document_id for p in self.planned],
        }


def _hash(rng: random.Random) -> str:
    return hashlib.sha256(rng.randbytes(16)).hexdigest()


def brute_force(rng: random.Random, orgs: list[Organization], seed: int,
                start: float) -> ScenarioInstance:
    """30 failed network logons on one account from one outside address, then a success."""
    org = orgs[0]
    inst = ScenarioInstance("brute_force", f"sim{seed}-brute_force-{org.id}", [org.id],
                            ["SRV-DPI-01"], f"185.220.101.{rng.randrange(2, 250)}")
    user = "admin.dpi"
    for n in range(31):
        eid = event_id(org.id, inst.instance, n)
        success = n == 30

        def build(when: datetime, eid: str = eid, success: bool = success, n: int = n) -> Any:
            return ev.windows_logon(org, when, eid, success=success, host="SRV-DPI-01",
                                    user=user, source_ip=inst.indicator, logon_type=3,
                                    record=900_000 + n)

        inst.planned.append(Planned(start + n * 0.0005, build, eid, org.id))
    return inst


def malware(rng: random.Random, orgs: list[Organization], seed: int,
            start: float) -> ScenarioInstance:
    """A dropped binary on three hosts, then shadow copies deleted on each (ransomware)."""
    org = orgs[0]
    sha = _hash(rng)
    hosts = [f"PC-URG-{n:02d}" for n in rng.sample(range(1, 60), 3)]
    inst = ScenarioInstance("malware", f"sim{seed}-malware-{org.id}", [org.id], hosts, sha)
    dropped = r"C:\Users\Public\svch0st.exe"
    n = 0
    for h, host in enumerate(hosts):
        steps: list[Step] = [
            partial(ev.sysmon_file_create, org, host=host, user="dupont.a",
                    image=r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
                    target=dropped, record=800_000 + h * 10),
            partial(ev.sysmon_process, org, host=host, user="dupont.a", image=dropped,
                    command_line=f"{dropped} -q", parent_image=r"C:\Windows\explorer.exe",
                    record=800_001 + h * 10, sha256=sha),
            partial(ev.sysmon_process, org, host=host, user="dupont.a",
                    image=r"C:\Windows\System32\vssadmin.exe",
                    command_line="vssadmin.exe delete shadows /all /quiet", parent_image=dropped,
                    record=800_002 + h * 10),
        ]
        for step in steps:
            eid = event_id(org.id, inst.instance, n)
            inst.planned.append(Planned(start + n * 0.002, _with_id(step, eid), eid, org.id))
            n += 1
    return inst


def phishing(rng: random.Random, orgs: list[Organization], seed: int,
             start: float) -> ScenarioInstance:
    """The same lure mailed to five establishments; in each, a document runs PowerShell."""
    sender = f"facturation@{rng.choice(('ameli-remboursement', 'sante-paiement'))}.info"
    domain = f"cdn-{rng.randrange(100, 999)}.docs-partage.com"
    sha = _hash(rng)
    inst = ScenarioInstance("phishing", f"sim{seed}-phishing", [o.id for o in orgs], [], sender)
    n = 0
    for k, org in enumerate(orgs):
        host = ev.workstation(rng)
        inst.hosts.append(host)
        recipient = f"{ev.staff_user(rng)}@{org.id}.sante.fr"

        mail = partial(ev.email_received, org, sender=sender, recipient=recipient,
                       subject="Votre remboursement en attente", url_domain=domain,
                       attachment_sha256=sha)
        macro = partial(
            ev.sysmon_process, org, host=host, user="martin.b",
            image=r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
            command_line="powershell.exe -nop -w hidden -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBi"
            "AGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAGUAbgB0ACkA",
            parent_image=r"C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE",
            record=700_000 + k)
        steps: list[Step] = [mail, macro]
        for step in steps:
            eid = event_id(org.id, inst.instance, n)
            inst.planned.append(Planned(start + k * 0.01 + (n % 2) * 0.004,
                                        _with_id(step, eid), eid, org.id))
            n += 1
    return inst


#: Scenario name → (builder, establishments it needs, where in the run it starts).
SCENARIOS: dict[str, tuple[Callable[..., ScenarioInstance], int, float]] = {
    "brute_force": (brute_force, 1, 0.20),
    "malware": (malware, 1, 0.45),
    "phishing": (phishing, 5, 0.65),
}
