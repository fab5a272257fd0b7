"""What every persona's commands share: the --config option, settings, the stderr console.

Imports here and in every ``vigie.cli`` module stay light (typer, rich, the standard library,
``runtime`` pieces that import nothing national): a command imports the package that does its
work in its own body, so ``vigie --help`` is fast and ``vigie agent`` runs on a hospital server
without Faust, aiokafka, Elasticsearch, matplotlib or pySigma installed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from runtime.logs import setup_logging
from runtime.settings import Settings, load_settings

#: Messages for people (progress, summaries) go to stderr; stdout is for data.
console = Console(stderr=True)

# Not ``exists=True``: a missing settings file is a configuration error (exit 78) reported by
# load_settings with its path, not a usage error.
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML settings file",
                                                dir_okay=False)]


def log_level(default: str = "INFO") -> str:
    """``VIGIE_LOG_LEVEL`` (which ``--debug`` sets to DEBUG), else ``default``."""
    return os.environ.get("VIGIE_LOG_LEVEL") or default


def settings(config: Path | None, **overrides: object) -> Settings:
    """The settings of ``config`` and the environment, with logging set up from them."""
    loaded = load_settings(config, **overrides)
    setup_logging(loaded.log_level, loaded.log_json)
    return loaded
