"""deploy/compose cannot run here (no Docker engine): check it structurally instead."""

from __future__ import annotations

from pathlib import Path

import yaml

from runtime.settings import setting_variables

COMPOSE = Path(__file__).resolve().parents[2] / "deploy" / "compose" / "compose.yaml"


def test_compose_runs_the_whole_pipeline() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert {"kafka", "elasticsearch", "kibana", "processor", "sink"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["elasticsearch"]["image"].split(":")[-1].startswith("9.")
    assert services["kibana"]["image"].split(":")[-1] == (
        services["elasticsearch"]["image"].split(":")[-1]), "Kibana must match Elasticsearch"
    assert services["processor"]["command"] == ["process"]
    assert services["sink"]["command"] == ["sink"]


def test_compose_only_sets_settings_that_exist() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    known = setting_variables()
    for name in ("processor", "sink", "registry"):
        for variable in services[name].get("environment", {}):
            assert variable in known, f"{name}: {variable} is not a Vigie setting"
