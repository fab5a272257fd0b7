"""The local Elasticsearch's vigie-analysis plugin: built once per source version, swapped in
whole, and a running node without the current build is recognised.

The compiler is replaced by a stand-in that writes one class file (javac and the distribution's
jars are exercised by ``vigie stack up`` and tests/integration/test_es_api_keys.py); what is
checked here is the caching and the install, which decide whether a node gets the plugin.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from deploy.local import es_analysis
from deploy.local.versions import ES_MIN_JAVA, ES_VERSION


@pytest.fixture()
def sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the plugin's sources that a test may edit."""
    copy = tmp_path / "es-analysis"
    shutil.copytree(es_analysis.SOURCES, copy)
    monkeypatch.setattr(es_analysis, "SOURCES", copy)
    return copy


@pytest.fixture()
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Each compilation's output folder; the stand-in writes the plugin's main class."""
    calls: list[Path] = []

    def fake_compile(dist: Path, out: Path) -> None:
        calls.append(dist)
        main = out / "vigie" / "es" / "analysis" / "SecurityIndexAnalysisPlugin.class"
        main.parent.mkdir(parents=True)
        main.write_bytes(b"\xca\xfe\xba\xbe")

    monkeypatch.setattr(es_analysis, "_compile", fake_compile)
    return calls


@pytest.fixture()
def dist(tmp_path: Path) -> Path:
    home = tmp_path / f"elasticsearch-{ES_VERSION}"
    (home / "plugins").mkdir(parents=True)
    (home / "lib").mkdir()
    return home


def _descriptor(dist: Path) -> dict[str, str]:
    path = dist / "plugins" / es_analysis.PLUGIN_NAME / "plugin-descriptor.properties"
    return es_analysis._read_properties(path)


def test_the_plugin_is_built_into_plugins_with_a_complete_descriptor(
        sources: Path, compiles: list[Path], dist: Path) -> None:
    target = es_analysis.install_plugin(dist, lambda _: None)
    assert target == dist / "plugins" / "vigie-analysis"
    descriptor = _descriptor(dist)
    assert descriptor == {
        "description": descriptor["description"], "name": "vigie-analysis",
        "version": es_analysis.plugin_version(),
        "classname": "vigie.es.analysis.SecurityIndexAnalysisPlugin",
        "java.version": str(ES_MIN_JAVA), "elasticsearch.version": ES_VERSION,
    }
    main_source = sources / "src" / Path(*descriptor["classname"].split(".")).with_suffix(
        ".java")
    assert main_source.is_file(), "the descriptor names a class the sources do not have"
    with zipfile.ZipFile(target / "vigie-analysis.jar") as jar:
        assert "vigie/es/analysis/SecurityIndexAnalysisPlugin.class" in jar.namelist()
    # Elasticsearch loads every folder of plugins/: nothing else may be left there.
    assert [p.name for p in (dist / "plugins").iterdir()] == ["vigie-analysis"]
    assert sorted(p.name for p in dist.iterdir()) == ["lib", "plugins"]


def test_an_installed_current_build_is_not_rebuilt(
        sources: Path, compiles: list[Path], dist: Path) -> None:
    es_analysis.install_plugin(dist, lambda _: None)
    said: list[str] = []
    es_analysis.install_plugin(dist, said.append)
    assert len(compiles) == 1 and said == []


def test_a_changed_source_is_rebuilt_and_replaces_the_old_build(
        sources: Path, compiles: list[Path], dist: Path) -> None:
    es_analysis.install_plugin(dist, lambda _: None)
    before = es_analysis.plugin_version()
    java = sources / "src" / "vigie" / "es" / "analysis" / "UniqueTokenFilter.java"
    java.write_text(java.read_text() + "\n// changed\n")
    assert es_analysis.plugin_version() != before
    es_analysis.install_plugin(dist, lambda _: None)
    assert len(compiles) == 2
    assert _descriptor(dist)["version"] == es_analysis.plugin_version()
    assert [p.name for p in (dist / "plugins").iterdir()] == ["vigie-analysis"]
    assert sorted(p.name for p in dist.iterdir()) == ["lib", "plugins"]


def test_a_failed_build_leaves_the_previous_one_and_no_partial_folder(
        sources: Path, compiles: list[Path], dist: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    es_analysis.install_plugin(dist, lambda _: None)
    installed = _descriptor(dist)["version"]

    def broken(dist: Path, out: Path) -> None:
        raise es_analysis.StackError("javac: error")

    monkeypatch.setattr(es_analysis, "_compile", broken)
    java = sources / "src" / "vigie" / "es" / "analysis" / "UniqueTokenFilter.java"
    java.write_text(java.read_text() + "\n// changed\n")
    with pytest.raises(es_analysis.StackError, match="javac"):
        es_analysis.install_plugin(dist, lambda _: None)
    assert _descriptor(dist)["version"] == installed
    assert sorted(p.name for p in dist.iterdir()) == ["lib", "plugins"]


def test_the_version_names_the_elasticsearch_it_was_built_for() -> None:
    version = es_analysis.plugin_version()
    assert version.startswith(f"{ES_VERSION}+") and len(version) == len(ES_VERSION) + 13


def test_a_running_node_without_the_current_build_must_restart() -> None:
    current = {"name": "vigie-analysis", "version": es_analysis.plugin_version()}
    assert es_analysis.restart_reason([current]) is None
    missing = es_analysis.restart_reason([])
    assert missing is not None and "without the vigie-analysis plugin" in missing
    older = es_analysis.restart_reason([{"name": "vigie-analysis", "version": "9.5.0+0"}])
    assert older is not None and "9.5.0+0" in older
    other = es_analysis.restart_reason([{"name": "analysis-icu", "version": ES_VERSION}])
    assert other is not None and "without" in other
