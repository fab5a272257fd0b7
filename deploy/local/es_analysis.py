"""The ``vigie-analysis`` Elasticsearch plugin: built from ``es-analysis/`` and installed into
the local distribution, so that the local stack can store API keys.

Why: the local stack runs Elasticsearch's integ-test distribution (the only 9.x build on Maven
Central), which has no ``analysis-common`` module. Elasticsearch's ``.security`` index, where API
keys live, declares an e-mail analyzer built from ``pattern_capture``, ``uax_url_email`` and
``unique`` (all three from that module), so creating the index, hence the first key, fails with
``Unknown filter type [pattern_capture] for [email]``. The plugin's Java sources
(``es-analysis/src``) register those three types on top of the Lucene classes the distribution
ships. Production clusters run the full distribution, whose module provides them: there, nothing
of this is installed.

The plugin is compiled here, with the machine's JDK (21+, with ``javac``) against the
distribution's own ``lib/`` jars, so it always matches the Elasticsearch it loads into. Its
version is the Elasticsearch version plus a hash of the sources (and of the build recipe): the
installed copy is rebuilt only when that changes, and a running node whose ``_nodes/plugins``
shows another version (or none) is known to need a restart (:func:`restart_reason`).

The distribution directory may be shared by several checkouts (``/var/cache/vigie`` as root),
so the new build is staged beside ``plugins/`` and renamed into place: a starting node sees
either the old plugin or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from string import Template

from deploy.local.errors import StackError
from deploy.local.java import find_jdk
from deploy.local.versions import ES_MIN_JAVA, ES_VERSION

Progress = Callable[[str], None]

#: The plugin's name: its folder under ``plugins/`` and what ``_nodes/plugins`` reports.
PLUGIN_NAME = "vigie-analysis"

#: Java sources and the descriptor template.
SOURCES = Path(__file__).parent / "es-analysis"

#: Bumped when the way the plugin is built changes (javac flags, jar layout, descriptor
#: rendering), so an installed build made the old way is replaced.
BUILD_RECIPE = "1"

_DESCRIPTOR = "plugin-descriptor.properties"
#: Jar entries get this fixed timestamp so that the same sources give the same jar.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _source_files() -> list[Path]:
    return sorted(p for p in SOURCES.rglob("*") if p.is_file() and p.suffix in (".java",
                                                                                 ".properties"))


def source_hash() -> str:
    """SHA-256 of what determines the build: the sources, the descriptor template, the
    Elasticsearch version it compiles against, the Java release and the build recipe."""
    digest = hashlib.sha256()
    for part in (ES_VERSION, str(ES_MIN_JAVA), BUILD_RECIPE):
        digest.update(part.encode() + b"\0")
    for path in _source_files():
        digest.update(path.relative_to(SOURCES).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def plugin_version() -> str:
    """``9.5.0+<12 hex>``: what the descriptor declares and a running node reports."""
    return f"{ES_VERSION}+{source_hash()[:12]}"


def _read_properties(path: Path) -> dict[str, str]:
    """``key=value`` lines of a Java properties file (the simple form our descriptor uses)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")) and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def installed_version(dist: Path) -> str | None:
    """The version of the plugin installed in the distribution at ``dist``, or None."""
    try:
        return _read_properties(dist / "plugins" / PLUGIN_NAME / _DESCRIPTOR).get("version")
    except OSError:
        return None


def _compile(dist: Path, out: Path) -> None:
    """``javac`` the sources against ``dist/lib`` into ``out``, for Java ``ES_MIN_JAVA``
    (the JDK may be newer than the one Elasticsearch runs on)."""
    jdk = find_jdk(ES_MIN_JAVA, purpose=f"Building the {PLUGIN_NAME} plugin",
                   env_vars=("ES_JAVA_HOME", "JAVA_HOME"), prefer_newest=True, compiler=True)
    assert jdk.javac is not None  # find_jdk(compiler=True) returns only JDKs with javac
    sources = [str(p) for p in _source_files() if p.suffix == ".java"]
    done = subprocess.run(
        [str(jdk.javac), "--release", str(ES_MIN_JAVA), "-nowarn", "-encoding", "UTF-8",
         "-cp", str(dist / "lib" / "*"), "-d", str(out), *sources],
        capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        tail = "\n".join((done.stderr + done.stdout).strip().splitlines()[-30:])
        raise StackError(f"compiling the {PLUGIN_NAME} Elasticsearch plugin ({SOURCES}) "
                         f"with {jdk} failed:\n{tail}")


def _write_jar(classes: Path, jar: Path) -> None:
    """A jar of ``classes`` (a zip with a manifest), reproducible: sorted, fixed times."""
    with zipfile.ZipFile(jar, "w", zipfile.ZIP_DEFLATED) as zf:
        manifest = zipfile.ZipInfo("META-INF/MANIFEST.MF", _ZIP_EPOCH)
        zf.writestr(manifest, f"Manifest-Version: 1.0\nImplementation-Title: {PLUGIN_NAME}\n"
                              f"Implementation-Version: {plugin_version()}\n\n")
        for path in sorted(classes.rglob("*.class")):
            info = zipfile.ZipInfo(path.relative_to(classes).as_posix(), _ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())


def _render_descriptor(target: Path) -> None:
    template = Template((SOURCES / _DESCRIPTOR).read_text())
    target.write_text(template.substitute(plugin_version=plugin_version(),
                                          java_version=ES_MIN_JAVA, es_version=ES_VERSION))


def _readable(tree: Path) -> None:
    """Directories 0755 and files 0644: the ``vigie-es`` user reads the plugin, nobody but
    its installer writes it."""
    for path in [tree, *tree.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def _swap_into(staged: Path, target: Path) -> None:
    """Put ``staged`` at ``target``, replacing what is there, by renames on one filesystem."""
    old = target.parent.parent / f".{PLUGIN_NAME}.old-{os.getpid()}"
    if target.exists():
        target.rename(old)
    try:
        staged.rename(target)
    except OSError:
        # Another checkout sharing this distribution installed a build in between: fine if
        # it is this one.
        if installed_version(target.parent.parent) != plugin_version():
            raise
    shutil.rmtree(old, ignore_errors=True)


def install_plugin(dist: Path, progress: Progress) -> Path:
    """Make sure ``dist/plugins/vigie-analysis`` holds the build of the current sources;
    returns that folder. A no-op (one hash of a few small files) when it already does."""
    target = dist / "plugins" / PLUGIN_NAME
    if installed_version(dist) == plugin_version():
        return target
    t0 = time.monotonic()
    progress(f"building the {PLUGIN_NAME} Elasticsearch plugin (pattern_capture, "
             f"uax_url_email, unique: what the .security index needs)…")
    # Staged next to plugins/, never in it: Elasticsearch loads every folder of plugins/.
    staged = dist / f".{PLUGIN_NAME}.partial-{os.getpid()}"
    shutil.rmtree(staged, ignore_errors=True)
    try:
        classes = staged / "classes"
        classes.mkdir(parents=True)
        _compile(dist, classes)
        plugin = staged / PLUGIN_NAME
        plugin.mkdir()
        _write_jar(classes, plugin / f"{PLUGIN_NAME}.jar")
        _render_descriptor(plugin / _DESCRIPTOR)
        _readable(plugin)
        (dist / "plugins").mkdir(exist_ok=True)
        _swap_into(plugin, target)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    progress(f"{PLUGIN_NAME} {plugin_version()} installed in {target} "
             f"({time.monotonic() - t0:.1f} s)")
    return target


def restart_reason(node_plugins: Iterable[Mapping[str, object]]) -> str | None:
    """Why a running node must restart to store API keys, from its ``_nodes/plugins`` list
    (``[{"name": …, "version": …}]``); None when it runs the current build."""
    versions = {str(p.get("name")): str(p.get("version")) for p in node_plugins}
    running = versions.get(PLUGIN_NAME)
    if running == plugin_version():
        return None
    if running is None:
        return (f"it was started without the {PLUGIN_NAME} plugin, so it cannot store API "
                f"keys (its .security index needs pattern_capture)")
    return f"it runs {PLUGIN_NAME} {running}, not the current build {plugin_version()}"
