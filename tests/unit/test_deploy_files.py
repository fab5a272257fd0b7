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
    known = setting_variables() | {"VIGIE_CONFIG"}  # the settings file itself
    for name in ("processor", "sink", "registry"):
        for variable in services[name].get("environment", {}):
            assert variable in known, f"{name}: {variable} is not a Vigie setting"


# --- secured like deploy/local (issue 12) ------------------------------------------------------
KAFKA_PROPERTIES = COMPOSE.with_name("kafka-server.properties")


def _properties() -> dict[str, str]:
    lines = [line.split("=", 1) for line in KAFKA_PROPERTIES.read_text().splitlines()
             if "=" in line and not line.lstrip().startswith("#")]
    return {key.strip(): value.strip() for key, value in lines}


def _listeners() -> dict[str, tuple[str, int]]:
    """Listener name -> (security protocol, port)."""
    props = _properties()
    protocols = dict(item.split(":") for item in
                     props["listener.security.protocol.map"].split(","))
    found = {}
    for listener in props["listeners"].split(","):
        name, address = listener.split("://")
        found[name] = (protocols[name], int(address.rsplit(":", 1)[1]))
    return found


def test_compose_kafka_has_no_plaintext_listener_and_authorizes_everything() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert "server.properties" in " ".join(services["kafka"]["entrypoint"])
    assert "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP" not in services["kafka"].get("environment", {})
    listeners = _listeners()
    assert listeners and all(protocol in ("SSL", "SASL_SSL")
                             for protocol, _ in listeners.values()), listeners
    props = _properties()
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["listener.name.controller.ssl.client.auth"] == "required"
    assert props["authorizer.class.name"] == (
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer")
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["auto.create.topics.enable"] == "false"
    assert "--add-scram" in " ".join(services["kafka-format"]["command"])


def test_compose_elasticsearch_has_security_and_tls_on() -> None:
    env = yaml.safe_load(COMPOSE.read_text())["services"]["elasticsearch"]["environment"]
    for setting in ("xpack.security.enabled", "xpack.security.http.ssl.enabled",
                    "xpack.security.transport.ssl.enabled"):
        assert env[setting] == "true", setting


def test_compose_publishes_no_port_without_tls(tmp_path: Path) -> None:
    from deploy.compose.setup import init

    services = yaml.safe_load(COMPOSE.read_text())["services"]
    tls_ports = {port for protocol, port in _listeners().values() if protocol.endswith("SSL")}
    init(tmp_path, chown=False)
    kibana = yaml.safe_load((tmp_path / "kibana" / "kibana.yml").read_text())
    for name, service in services.items():
        for mapping in service.get("ports", []):
            container_port = int(str(mapping).rsplit(":", 1)[-1])
            if name == "kafka":
                assert container_port in tls_ports, mapping
            elif name == "elasticsearch":
                assert container_port == 9200 and service["environment"][
                    "xpack.security.http.ssl.enabled"] == "true"
            elif name == "kibana":
                assert container_port == 5601 and kibana["server.ssl.enabled"] is True
            else:
                raise AssertionError(f"{name} publishes {mapping}: plain HTTP (metrics)")


def test_compose_processes_run_as_their_own_principals(tmp_path: Path) -> None:
    from deploy.compose.setup import init

    services = yaml.safe_load(COMPOSE.read_text())["services"]
    init(tmp_path, chown=False)
    users = {}
    for name in ("processor", "sink"):
        config = Path(services[name]["environment"]["VIGIE_CONFIG"])
        data = yaml.safe_load((tmp_path / config.relative_to("/etc/vigie")).read_text())
        assert data["kafka"]["security_protocol"] == "SASL_SSL"
        assert data["kafka"]["bootstrap"] == "kafka:19092"
        assert data["es_url"].startswith("https://")
        users[name] = data["kafka"]["sasl_username"]
    assert users == {"processor": "vigie-processor", "sink": "vigie-sink"}
