"""Where the local stack keeps its files.

Two places, on purpose:

* the **cache** (``$VIGIE_CACHE``, default ``~/.cache/vigie``), outside git: downloaded jars and
  the Elasticsearch distribution, shared by every checkout and never worth committing;
* the **state** (``$VIGIE_HOME``, default ``<repo>/.vigie``, git-ignored): data, logs, rendered
  configuration and pid files of *this* checkout, so ``rm -rf .vigie`` is a clean reset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deploy.local.settings import StackSettings
from deploy.local.versions import ES_VERSION, KAFKA_VERSION
from runtime.settings import load_settings


def state_dir() -> Path:
    """The ``home`` setting (``$VIGIE_HOME``, default ``<repo>/.vigie``): the same folder
    every Vigie process uses."""
    return load_settings().home


def cache_dir() -> Path:
    """``$VIGIE_CACHE`` or ``~/.cache/vigie``: downloads, reused across checkouts."""
    return StackSettings().cache.expanduser().resolve()


@dataclass(frozen=True)
class Layout:
    """Every path the stack reads or writes, computed once from the two roots."""

    state: Path
    cache: Path

    @classmethod
    def default(cls) -> Layout:
        """The layout for the current environment variables."""
        return cls(state=state_dir(), cache=cache_dir())

    # --- state -----------------------------------------------------------------------------
    @property
    def run(self) -> Path:
        """Pid files and the lock that serialises concurrent ``up``/``down`` calls."""
        return self.state / "run"

    @property
    def kafka(self) -> Path:
        return self.state / "kafka"

    @property
    def elasticsearch(self) -> Path:
        return self.state / "elasticsearch"

    # --- cache -----------------------------------------------------------------------------
    @property
    def kafka_dist(self) -> Path:
        """Holds ``pom.xml`` and ``jars/`` (kafka_2.13 and its runtime dependencies)."""
        return self.cache / f"kafka-{KAFKA_VERSION}"

    @property
    def es_zip(self) -> Path:
        return self.cache / f"elasticsearch-{ES_VERSION}.zip"

    @property
    def es_dist(self) -> Path:
        return self.cache / f"elasticsearch-{ES_VERSION}"
