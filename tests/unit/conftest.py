"""Unit tests never read the settings file that ``vigie stack up`` leaves in the developer's
home (``<home>/vigie.yaml``): they test the defaults, not a local stack's credentials."""

from __future__ import annotations

import os

import pytest

import runtime.elasticsearch
import runtime.settings

#: The real lookup, for the test that checks it.
REAL_DEFAULT_CONFIG = runtime.settings.default_config


@pytest.fixture(autouse=True)
def _no_home_settings_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime.settings, "default_config",
                        lambda: os.environ.get("VIGIE_CONFIG") or None)


@pytest.fixture(autouse=True)
def _no_elasticsearch_urls_of_earlier_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """The URL a "does not answer" error names is that of this process's last client: in a
    whole-suite run, the integration tests' stack would otherwise show in unit tests' errors."""
    monkeypatch.setattr(runtime.elasticsearch, "_last_url", [])
