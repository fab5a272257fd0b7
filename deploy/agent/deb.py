"""``python -m deploy.agent.deb [--out dist]``: the ``vigie-agent`` Debian package.

What it installs:

- ``/opt/vigie-agent``: a virtual environment of the system's Python 3 holding the
  ``vigie-agent`` wheel (:mod:`deploy.agent.build`) and its dependencies, nothing else;
  ``/usr/bin/vigie`` points at its ``vigie`` command;
- ``/lib/systemd/system/vigie-agent.service`` (hardened, see the unit's comments) and
  ``/usr/share/vigie-agent/low-port.conf`` (the drop-in for a syslog port below 1024);
- ``/etc/vigie-agent/agent.yaml.sample`` (a conffile) and ``/usr/share/doc/vigie-agent``.

The package neither enables nor starts the service: the agent needs its key, its Kafka
credential and the establishment's identity first (``docs/agent.md``, "Install from the
.deb"). Removing it stops the service; purging it also deletes the state directory (spool,
positions, pseudonymisation key).

The environment is built under a staging root, then made to live at ``/opt/vigie-agent``:
script shebangs and ``pyvenv.cfg`` are rewritten and the bytecode recompiled with the final
paths. Its interpreter is ``/usr/bin/python3`` of the build machine, so the package depends
on that Python minor version (Debian 12: 3.11).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from deploy.agent.build import HERE, REPO, build_wheel

PACKAGE = "vigie-agent"
PREFIX = Path("/opt/vigie-agent")
SYSTEM_PYTHON = "/usr/bin/python3"

POSTINST = """#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
if [ "$1" = configure ] && [ ! -e /etc/vigie-agent/agent.yaml ]; then
    echo "vigie-agent: configure /etc/vigie-agent/agent.yaml (see agent.yaml.sample), then"
    echo "  vigie agent test config -c /etc/vigie-agent/agent.yaml"
    echo "  systemctl enable --now vigie-agent"
fi
exit 0
"""

PRERM = """#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    systemctl stop vigie-agent.service 2>/dev/null || true
fi
exit 0
"""

POSTRM = """#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
if [ "$1" = purge ]; then
    rm -rf /var/lib/private/vigie-agent /var/lib/vigie-agent
fi
exit 0
"""


def _version() -> str:
    """``vigie.__version__``, read from the file (deploy does not import the CLI layer)."""
    found = re.search(r'^__version__ = "([^"]+)"', (REPO / "vigie" / "__init__.py").read_text(),
                      re.MULTILINE)
    if found is None:
        raise SystemExit("vigie/__init__.py: no __version__")
    return found.group(1)


def _python_minor() -> str:
    done = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print('%d.%d' % "
                           "sys.version_info[:2])"], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def _relocate(venv: Path, final: Path) -> None:
    """Make the environment built at ``venv`` correct at ``final``."""
    old, new = str(venv).encode(), str(final).encode()
    for path in [*(venv / "bin").iterdir(), venv / "pyvenv.cfg"]:
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if old in data:
            path.write_bytes(data.replace(old, new))
    for cache in venv.rglob("__pycache__"):
        shutil.rmtree(cache)
    # Bytecode naming the final paths (tracebacks), written now: /opt is read-only to the
    # service (ProtectSystem=strict), which could not write it at run time; checked by hash
    # of nothing (unchecked-hash): dpkg does not keep the build's file times.
    subprocess.run([str(venv / "bin" / "python"), "-m", "compileall", "-q",
                    "--invalidation-mode", "unchecked-hash", "-s", str(venv),
                    "-p", str(final), str(venv / "lib")], check=True)


def _control(version: str, python: str, installed_kib: int) -> str:
    major, minor = python.split(".")
    return (f"Package: {PACKAGE}\n"
            f"Version: {version}\n"
            "Section: admin\n"
            "Priority: optional\n"
            f"Architecture: {_architecture()}\n"
            f"Depends: python3 (>= {python}), python3 (<< {major}.{int(minor) + 1}), "
            "libc6\n"
            f"Installed-Size: {installed_kib}\n"
            "Maintainer: Vigie <vigie@example.org>\n"
            "Homepage: https://example.org/vigie\n"
            "Description: Vigie hospital log agent\n"
            " Reads Windows event logs (EVTX, Winlogbeat JSON), syslog (UDP, TCP, TLS),\n"
            " auth.log and CEF; pseudonymises identities; signs every event and ships\n"
            " it through a durable spool to the national Vigie platform (Kafka).\n")


def _architecture() -> str:
    done = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True)
    return done.stdout.strip() or sysconfig.get_platform().rpartition("-")[2]


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def build_deb(out: Path) -> Path:
    """Build ``vigie-agent_<version>_<arch>.deb`` into ``out``; returns its path."""
    out.mkdir(parents=True, exist_ok=True)
    version = _version()
    with tempfile.TemporaryDirectory(prefix="vigie-agent-deb-") as tmp:
        root = Path(tmp) / "root"
        wheel = build_wheel(Path(tmp) / "wheel")
        venv = root / PREFIX.relative_to("/")
        subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True)
        subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                        "install", "--quiet", "--disable-pip-version-check",
                        "--no-warn-script-location", str(wheel)], check=True)
        _relocate(venv, PREFIX)
        (root / "usr" / "bin").mkdir(parents=True)
        (root / "usr" / "bin" / "vigie").symlink_to(PREFIX / "bin" / "vigie")
        _write(root / "lib/systemd/system/vigie-agent.service",
               (HERE / "vigie-agent.service").read_text())
        _write(root / "usr/share/vigie-agent/low-port.conf",
               (HERE / "low-port.conf").read_text())
        _write(root / "etc/vigie-agent/agent.yaml.sample",
               (HERE / "agent.yaml.sample").read_text())
        (root / "etc/vigie-agent").chmod(0o755)
        _write(root / "usr/share/doc/vigie-agent/agent.md",
               (REPO / "docs" / "agent.md").read_text())
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()
                   and not p.is_symlink())
        debian = root / "DEBIAN"
        _write(debian / "control", _control(version, _python_minor(), size // 1024 + 1))
        _write(debian / "conffiles", "/etc/vigie-agent/agent.yaml.sample\n")
        for name, script in (("postinst", POSTINST), ("prerm", PRERM), ("postrm", POSTRM)):
            _write(debian / name, script, 0o755)
        target = out / f"{PACKAGE}_{version}_{_architecture()}.deb"
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root),
                        str(target)], check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "SOURCE_DATE_EPOCH": "0"})
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist",
                        help="folder for the .deb (default: dist/)")
    print(build_deb(parser.parse_args(argv).out))


if __name__ == "__main__":
    main()
