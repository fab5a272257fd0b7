"""One settings path: defaults < YAML file < VIGIE_* environment < explicit overrides;
mistakes refused by name; the environment read, never written; passwords hidden."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from deploy.local.layout import state_dir
from deploy.local.settings import StackSettings
from processors.incidents.config import DEFAULT_PATH, load_scoring
from runtime.settings import (
    DEFAULT_HOME,
    OWNED_ELSEWHERE,
    Settings,
    SettingsError,
    load_settings,
)

PASSWORD = "es-s3cret-never-printed"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No VIGIE_* variable of the developer's shell or CI leaks into these tests."""
    for name in list(os.environ):
        if name.upper().startswith("VIGIE_"):
            monkeypatch.delenv(name)


def _yaml(tmp_path: Path, data: dict[str, object]) -> Path:
    path = tmp_path / "vigie.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_defaults() -> None:
    settings = load_settings()
    assert settings.kafka.bootstrap == "localhost:9092"
    assert settings.kafka.security_protocol == "PLAINTEXT"
    assert settings.home == DEFAULT_HOME
    assert settings.registry == DEFAULT_HOME / "registry" / "establishments.jsonl"


def test_yaml_then_environment_then_overrides(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    config = _yaml(tmp_path, {
        "sink_group": "from-yaml", "notifier_group": "from-yaml", "metrics_port": 9100,
        "kafka": {"bootstrap": "yaml-broker:9093", "security_protocol": "SASL_SSL",
                  "sasl_mechanism": "SCRAM-SHA-256", "sasl_username": "vigie",
                  "sasl_password": "from-yaml"},
    })
    monkeypatch.setenv("VIGIE_SINK_GROUP", "from-env")
    monkeypatch.setenv("VIGIE_METRICS_PORT", "9200")
    monkeypatch.setenv("VIGIE_KAFKA__BOOTSTRAP", "env-broker:9093")
    settings = load_settings(config, metrics_port=9300)
    assert settings.notifier_group == "from-yaml"  # only in the file
    assert settings.sink_group == "from-env"  # environment over the file
    assert settings.metrics_port == 9300  # explicit override over both
    # Nested: the environment replaces one field, the file's other Kafka fields stay.
    assert settings.kafka.bootstrap == "env-broker:9093"
    assert settings.kafka.security_protocol == "SASL_SSL"
    assert settings.kafka.sasl_username == "vigie"


def test_vigie_config_names_the_file_when_no_option_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIE_CONFIG", str(_yaml(tmp_path, {"sink_group": "from-file"})))
    assert load_settings().sink_group == "from-file"
    assert Settings().sink_group == "from-file"
    other = _yaml(tmp_path / "..", {"sink_group": "from-option"})
    assert load_settings(other).sink_group == "from-option"  # --config wins


def test_loading_settings_leaves_the_environment_untouched(tmp_path: Path) -> None:
    before = dict(os.environ)
    load_settings(_yaml(tmp_path, {"sink_group": "x"}))
    assert dict(os.environ) == before
    # A later load without the file does not see it (it used to, through VIGIE_CONFIG).
    assert load_settings().sink_group == "vigie-sink"


@pytest.mark.parametrize("data, key", [
    ({"kafka_bootstrap": "old:9092"}, "kafka_bootstrap"),
    ({"correlation_enabled": False}, "correlation_enabled"),
    ({"kafka": {"bootstrap": "b:9092", "ssl_ca": "ca.pem"}}, "kafka.ssl_ca"),
])
def test_an_unknown_key_in_the_file_is_an_error_naming_it(
        tmp_path: Path, data: dict[str, object], key: str) -> None:
    config = _yaml(tmp_path, data)
    with pytest.raises(SettingsError) as refused:
        load_settings(config)
    assert f"{key}: unknown setting" in str(refused.value)
    assert str(config) in str(refused.value)


@pytest.mark.parametrize("variable, hint", [
    ("VIGIE_CORRELATION_ENABLED", "renamed VIGIE_INCIDENTS_ENABLED"),
    ("VIGIE_KAFKA_BOOTSTRAP", "renamed VIGIE_KAFKA__BOOTSTRAP"),
    ("VIGIE_SINK_GROUPS", "did you mean VIGIE_SINK_GROUP?"),
    ("VIGIE_KAFKA__SSL_CA", ""),
])
def test_an_unknown_vigie_variable_is_an_error_naming_it(
        monkeypatch: pytest.MonkeyPatch, variable: str, hint: str) -> None:
    monkeypatch.setenv(variable, "1")
    with pytest.raises(SettingsError, match=variable) as refused:
        load_settings()
    assert hint in str(refused.value)


def test_variables_owned_elsewhere_are_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in OWNED_ELSEWHERE:
        monkeypatch.setenv(variable, "x" if variable != "VIGIE_CONFIG" else "")
    load_settings()
    # deploy/local declares what it reads; the allow-list must cover every one of them.
    stack = {f"VIGIE_{name.upper()}" for name in StackSettings.model_fields}
    assert stack <= set(OWNED_ELSEWHERE)


def test_home_is_one_setting_that_every_default_path_and_the_local_stack_follow(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIE_HOME", str(tmp_path / "state"))
    settings = load_settings()
    assert settings.home == tmp_path / "state"
    assert settings.registry == tmp_path / "state" / "registry" / "establishments.jsonl"
    assert state_dir() == settings.home
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VIGIE_HOME", "relative")
    assert load_settings().home == tmp_path / "relative"  # same for a child in another cwd


def test_the_scoring_file_comes_from_the_setting_not_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    custom = tmp_path / "scoring.yaml"
    custom.write_text(DEFAULT_PATH.read_text().replace("workstation", "poste"))
    monkeypatch.setenv("VIGIE_SCORING", str(custom))
    assert load_settings().scoring == custom
    assert load_scoring(custom) != load_scoring(DEFAULT_PATH)
    assert load_scoring() == load_scoring(DEFAULT_PATH)  # no hidden read of VIGIE_SCORING


def test_passwords_are_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIE_ES_PASSWORD", PASSWORD)
    settings = load_settings()
    assert settings.es_password is not None
    assert settings.es_password.get_secret_value() == PASSWORD
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings)
    assert PASSWORD not in settings.model_dump_json()
    # An invalid file next to it: the error names the problem, not the values.
    config = _yaml(tmp_path, {"kafka": {"security_protocol": "SASL_SSL",
                                        "sasl_password": PASSWORD}})
    with pytest.raises(SettingsError) as refused:
        load_settings(config)
    assert "sasl_mechanism" in str(refused.value) and PASSWORD not in str(refused.value)
    assert "registry" not in str(refused.value)  # only the real mistake is reported


def test_the_home_settings_file_is_read_by_default_unless_vigie_config_says_otherwise(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`vigie stack up` writes <home>/vigie.yaml: every process of that home connects with
    it, with no option; VIGIE_CONFIG still names another file, and empty means none."""
    from tests.unit.conftest import REAL_DEFAULT_CONFIG

    monkeypatch.setattr("runtime.settings.default_config", REAL_DEFAULT_CONFIG)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("VIGIE_HOME", str(home))
    assert load_settings().sink_group == "vigie-sink"  # no file yet: defaults
    (home / "vigie.yaml").write_text(yaml.safe_dump({"sink_group": "from-home"}))
    assert load_settings().sink_group == "from-home"
    other = _yaml(tmp_path, {"sink_group": "from-variable"})
    monkeypatch.setenv("VIGIE_CONFIG", str(other))
    assert load_settings().sink_group == "from-variable"
    monkeypatch.setenv("VIGIE_CONFIG", "")
    assert load_settings().sink_group == "vigie-sink"
