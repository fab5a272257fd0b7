"""Find a JDK of a given major version without hard-coding where it is installed.

Kafka 4.x runs on Java 17 (the machine default here) but Elasticsearch 9 needs 21+, usually a
second JDK installed beside the default one. We look where JDKs conventionally live
(``$ES_JAVA_HOME``, ``$JAVA_HOME``, the ``java`` on ``PATH``, ``/usr/lib/jvm/*`` and friends)
and read each one's version, so the same code works on Debian, with SDKMAN or with Temurin.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from deploy.local.errors import StackError

#: Directories whose children are JDK homes on common Linux distributions and installers.
JVM_PARENTS = (
    Path("/usr/lib/jvm"),
    Path("/usr/java"),
    Path("/opt/java"),
    Path("/opt/jdk"),
    Path.home() / ".sdkman" / "candidates" / "java",
    Path.home() / ".jdks",
)


@dataclass(frozen=True)
class Jdk:
    """A JDK home and its major version (17, 21, 25…)."""

    home: Path
    major: int

    @property
    def java(self) -> Path:
        return self.home / "bin" / "java"

    @property
    def javac(self) -> Path | None:
        """The compiler, or None for a runtime-only install (a JRE)."""
        javac = self.home / "bin" / "javac"
        return javac if javac.is_file() and os.access(javac, os.X_OK) else None

    def __str__(self) -> str:
        return f"Java {self.major} ({self.home})"


def _major_from(text: str) -> int | None:
    """Major version from ``JAVA_VERSION="17.0.15"`` or ``version "1.8.0_392"`` style text."""
    match = re.search(r'version\s*=?\s*"(\d+)(?:\.(\d+))?', text, re.IGNORECASE)
    if not match:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2):  # 1.8 -> 8
        major = int(match.group(2))
    return major


def jdk_at(home: Path) -> Jdk | None:
    """The JDK at ``home``, or None if there is no runnable ``bin/java`` there.

    The ``release`` file is read first because starting a JVM per candidate costs ~100 ms each;
    ``java -version`` is the fallback for unusual layouts.
    """
    java = home / "bin" / "java"
    if not (java.is_file() and os.access(java, os.X_OK)):
        return None
    release = home / "release"
    major = None
    if release.is_file():
        major = _major_from(release.read_text(errors="replace"))
    if major is None:
        try:
            out = subprocess.run(
                [str(java), "-version"], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        major = _major_from(out.stderr + out.stdout)
    return Jdk(home.resolve(), major) if major is not None else None


def candidate_homes(env_vars: tuple[str, ...] = ("JAVA_HOME",)) -> list[Path]:
    """JDK homes worth checking, the explicitly configured ones first, without duplicates."""
    homes: list[Path] = []
    for var in env_vars:
        if os.environ.get(var):
            homes.append(Path(os.environ[var]))
    on_path = shutil.which("java")
    if on_path:
        homes.append(Path(on_path).resolve().parent.parent)
    for parent in JVM_PARENTS:
        if parent.is_dir():
            homes.extend(sorted(p for p in parent.iterdir() if p.is_dir()))
    seen: set[Path] = set()
    unique = []
    for home in homes:
        key = home.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(home)
    return unique


def find_jdk(
    min_major: int, *, purpose: str, env_vars: tuple[str, ...] = ("JAVA_HOME",),
    prefer_newest: bool = False, compiler: bool = False,
) -> Jdk:
    """A JDK of at least ``min_major``.

    The first configured one that qualifies wins (``env_vars`` in order, then the ``java`` on
    ``PATH``), so a user's explicit choice is respected; with ``prefer_newest`` an unset
    environment picks the highest version installed rather than the first found. With
    ``compiler`` only JDKs that have ``javac`` qualify (to build the local Elasticsearch's
    analysis plugin). Raises StackError listing what was found when nothing qualifies.
    """
    found = [jdk for home in candidate_homes(env_vars) if (jdk := jdk_at(home))]
    explicit = [
        jdk for var in env_vars if os.environ.get(var)
        if (jdk := jdk_at(Path(os.environ[var]))) and jdk.major >= min_major
        and (jdk.javac or not compiler)
    ]
    if explicit:
        return explicit[0]
    good = [jdk for jdk in found if jdk.major >= min_major and (jdk.javac or not compiler)]
    if not good:
        seen = ", ".join(str(j) + ("" if j.javac else " without javac") for j in found) or "none"
        what = "JDK with javac" if compiler else "JDK"
        raise StackError(
            f"{purpose} needs Java {min_major}+, but no such {what} was found (found: {seen}). "
            f"Install one (e.g. apt-get install openjdk-{max(min_major, 21)}-jdk-headless or a "
            f"Temurin JDK under /usr/lib/jvm) or point {' / '.join(env_vars)} at it."
        )
    if prefer_newest:
        return max(good, key=lambda j: j.major)
    return good[0]
