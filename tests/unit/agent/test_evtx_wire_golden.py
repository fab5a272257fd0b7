"""Must-show: the bytes the agent ships for every SigmaHQ regression ``.evtx`` stay the same.

Speed work on the agent's EVTX path (issue 14: the reader, the ECS mapping, the privacy
walk, the JSON writer) must not change one byte of what leaves the hospital. The SHA-256 of
every event value the agent produces for each sample (in clear, and pseudonymised with a
fixed key) was recorded before that work, in ``tests/data/agent/evtx_wire_digests.json``;
this test recomputes them through the real source and :class:`Finisher`.

A deliberate change of the wire documents (a new ECS field, a policy change) changes these
digests: regenerate them with ``python -m tests.unit.agent.test_evtx_wire_golden`` and say
why in the commit.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from producers.agent.pipeline import Finisher
from producers.agent.pseudonymise import Pseudonymiser
from producers.agent.sources.base import Context
from producers.agent.sources.evtx import WindowsFileSource
from producers.signing import Signer
from schemas.organization import Organization

REGRESSION = Path(__file__).resolve().parents[4] / "shared" / "data" / "sigma" / "regression"
SAMPLES = sorted(REGRESSION.rglob("*.evtx"))
DIGESTS = Path(__file__).resolve().parents[2] / "data" / "agent" / "evtx_wire_digests.json"
ORG = Organization(id="750712184", name="CHU Golden", type="university_hospital",
                   region="ile-de-france")
AGENT = "chu-golden-01"
SIGNER = Signer(AGENT, Ed25519PrivateKey.from_private_bytes(b"s" * 32))


def _values(sample: Path, finisher: Finisher) -> list[bytes]:
    source = WindowsFileSource("evtx", [str(sample)], Context(ORG.id, AGENT))
    values = []
    while batch := source.poll(1000):
        values.extend(finisher.record(doc, "evtx")[3] for doc in batch)
    return values


def digests() -> dict[str, dict[str, object]]:
    """Per sample (path under the regression folder): event count and the SHA-256 of its
    values, newline-joined, in clear and pseudonymised (and of its ``.json`` export,
pseudonymised). One finisher per mode for all the
    samples, as in a running agent (its caches warm across files)."""
    clear = Finisher(ORG, SIGNER, None)
    pseudonymised = Finisher(ORG, SIGNER, Pseudonymiser(b"k" * 32))
    out: dict[str, dict[str, object]] = {}
    for sample in SAMPLES:
        plain = _values(sample, clear)
        private = _values(sample, pseudonymised)
        export = sample.with_suffix(".json")  # the same records exported as JSON
        exported = _values(export, pseudonymised) if export.exists() else []
        out[sample.relative_to(REGRESSION).as_posix()] = {
            "events": len(plain),
            "clear": hashlib.sha256(b"\n".join(plain)).hexdigest(),
            "pseudonymised": hashlib.sha256(b"\n".join(private)).hexdigest(),
            "json_export_pseudonymised": hashlib.sha256(b"\n".join(exported)).hexdigest(),
        }
    return out


@pytest.fixture(scope="module")
def computed() -> dict[str, dict[str, object]]:
    return digests()


def test_samples_present() -> None:
    assert len(SAMPLES) >= 100, f"SigmaHQ regression samples not found under {REGRESSION}"


def test_every_sample_ships_the_recorded_bytes(computed: dict[str, dict[str, object]]) -> None:
    recorded = json.loads(DIGESTS.read_text())
    assert set(computed) == set(recorded)
    changed = {name: (recorded[name], figures) for name, figures in computed.items()
               if figures != recorded[name]}
    assert not changed, f"{len(changed)} sample(s) now ship other bytes: {changed}"
    assert sum(int(str(f["events"])) for f in computed.values()) >= 100


if __name__ == "__main__":
    DIGESTS.parent.mkdir(parents=True, exist_ok=True)
    DIGESTS.write_text(json.dumps(digests(), indent=1, sort_keys=True) + "\n")
    print(f"written to {DIGESTS}", file=sys.stderr)
