"""The ``vigie-agent`` Debian package built by the project (``make agent-deb``): what it
holds, ``dpkg -i`` on this machine, the installed unit through ``systemd-analyze verify``,
the installed command checking a configuration, then ``dpkg --purge`` leaving nothing.

Needs root and dpkg (skipped otherwise), and about two minutes (the package's virtual
environment fetches the agent's dependencies). Skipped when a vigie-agent package is already
installed here: it is not ours to replace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy.agent.deb import build_deb
from producers.signing import generate_key

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("dpkg-deb") is None or os.geteuid() != 0,
                       reason="needs dpkg and root"),
]

NATIONAL = ("faust", "aiokafka", "elasticsearch", "sigma", "matplotlib", "ahocorasick")


def sh(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if sh("dpkg-query", "-W", "vigie-agent").returncode == 0:
        pytest.skip("a vigie-agent package is already installed on this machine")
    return build_deb(tmp_path_factory.mktemp("deb"))


def test_package_metadata_and_contents(deb: Path) -> None:
    info = sh("dpkg-deb", "--info", str(deb)).stdout
    assert "Package: vigie-agent" in info and "Depends: python3 (>= 3." in info
    for script in ("postinst", "prerm", "postrm", "conffiles"):
        assert script in info
    contents = sh("dpkg-deb", "--contents", str(deb)).stdout
    for path in ("./opt/vigie-agent/bin/vigie", "./opt/vigie-agent/pyvenv.cfg",
                 "./lib/systemd/system/vigie-agent.service",
                 "./etc/vigie-agent/agent.yaml.sample", "./usr/share/vigie-agent/low-port.conf",
                 "./usr/bin/vigie -> /opt/vigie-agent/bin/vigie",
                 "site-packages/producers/agent/run.py", "site-packages/confluent_kafka/"):
        assert path in contents, path
    site = [line for line in contents.splitlines() if "site-packages/" in line]
    assert not [line for line in site for name in NATIONAL
                if f"site-packages/{name}/" in line or f"site-packages/{name}-" in line]
    assert "site-packages/processors/" not in contents and "/soc/" not in contents


def test_dpkg_install_verify_and_purge(deb: Path, tmp_path: Path) -> None:
    installed = sh("dpkg", "-i", str(deb))
    assert installed.returncode == 0, installed.stderr
    try:
        verified = sh("systemd-analyze", "verify", "/lib/systemd/system/vigie-agent.service")
        assert verified.returncode == 0, verified.stderr
        assert "vigie-agent.service" not in verified.stderr, verified.stderr
        shebang = Path("/opt/vigie-agent/bin/vigie").read_text().splitlines()[0]
        assert shebang == "#!/opt/vigie-agent/bin/python"  # relocated from the build root
        generate_key(tmp_path / "agent.key")
        sample = yaml.safe_load(Path("/etc/vigie-agent/agent.yaml.sample").read_text())
        sample.update(key_path=str(tmp_path / "agent.key"), state_dir=str(tmp_path / "state"))
        sample["kafka"].pop("ssl_cafile")
        config = tmp_path / "agent.yaml"
        config.write_text(yaml.safe_dump(sample))
        config.chmod(0o600)
        checked = subprocess.run(["/usr/bin/vigie", "agent", "test", "config", "-c",
                                  str(config)], capture_output=True, text=True, timeout=60,
                                 cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "PASS  agent key" in checked.stdout
    finally:
        purged = sh("dpkg", "--purge", "vigie-agent")
    assert purged.returncode == 0, purged.stderr
    assert not Path("/opt/vigie-agent").exists() and not Path("/usr/bin/vigie").exists()
    assert not Path("/lib/systemd/system/vigie-agent.service").exists()
