"""The pure parts of ``bench.security`` (the cost of TLS+SASL): the plaintext twins'
configuration, the paired ratios and the table. The timings themselves are not tested."""

from __future__ import annotations

from string import Template

import pytest

from bench.security import (
    STACK_FILES,
    compare,
    distinguishable,
    markdown,
    paired_ratios,
    plaintext_es_yaml,
    plaintext_kafka_properties,
)


def _properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines()
             if line.strip() and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def _stack_server_properties() -> str:
    values = {"broker_port": 19092, "controller_port": 19093, "log_dirs": "/tmp/data",
              "logs_dir": "/tmp/logs", "keystore": "/k.pem", "truststore": "/ca.pem",
              "admin_user": "vigie-admin", "admin_password": "s3cret",
              "super_users": "User:vigie-admin"}
    return Template((STACK_FILES / "kafka-server.properties").read_text()).substitute(values)


def test_plaintext_broker_is_the_stack_broker_without_its_security() -> None:
    secured = _properties(_stack_server_properties())
    plain = _properties(plaintext_kafka_properties(_stack_server_properties()))

    assert plain["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,BROKER:PLAINTEXT"
    assert not [key for key in plain if key.startswith(("ssl.", "sasl.", "listener.name."))]
    assert "authorizer.class.name" not in plain and "super.users" not in plain
    assert "s3cret" not in plaintext_kafka_properties(_stack_server_properties())
    # Everything that is not security is the shared broker's own, value for value.
    for key in ("num.partitions", "log.segment.bytes", "auto.create.topics.enable",
                "group.initial.rebalance.delay.ms", "transaction.max.timeout.ms",
                "listeners", "log.dirs", "process.roles"):
        assert plain[key] == secured[key], key


def test_a_security_setting_the_rewrite_does_not_know_is_refused() -> None:
    with pytest.raises(ValueError, match="security settings left"):
        plaintext_kafka_properties("security.inter.broker.protocol=SASL_SSL\n")


def test_plaintext_elasticsearch_has_security_off_and_the_rest_unchanged() -> None:
    secured = ("cluster.name: c\nhttp.port: 1\nxpack.security.enabled: true\n"
               "xpack.security.http.ssl.enabled: true\n"
               "action.destructive_requires_name: false\n")
    plain = plaintext_es_yaml(secured).splitlines()

    assert [line for line in plain if line.startswith("xpack.")] == [
        "xpack.security.enabled: false"]
    assert {"cluster.name: c", "http.port: 1",
            "action.destructive_requires_name: false"} <= set(plain)


def test_ratio_pairs_each_round_instead_of_dividing_the_medians() -> None:
    # The machine got busy during round 3: both sides halved. Paired, that drift cancels;
    # the medians of each side would mix a busy secured round with a calm plaintext one.
    fig = compare(secured=[800.0, 300.0, 450.0], plaintext=[1000.0, 1000.0, 500.0])

    assert fig["ratio"] == 0.8
    assert (fig["ratio_min"], fig["ratio_max"]) == (0.3, 0.9)
    assert fig["ratio_of_medians"] == 0.45
    assert fig["cost_pct"] == 20.0
    assert fig["secured"]["median"] == 450.0 and fig["plaintext"]["n"] == 3


def test_rounds_must_pair() -> None:
    with pytest.raises(ValueError, match="rounds must pair"):
        paired_ratios([1.0, 2.0], [1.0])


def test_table_shows_each_ratio_and_says_why_a_figure_is_missing() -> None:
    result = {
        "when": "now", "records": 20_000, "record_bytes_mean": 1000, "rounds": 3,
        "bulk_batch": 5000, "secured": "SASL_SSL", "plaintext": "PLAINTEXT",
        "es_not_measured": "--kafka-only",
        "figures": {
            "kafka_produce": compare([700.0, 720.0, 710.0], [1000.0, 1000.0, 1000.0]),
            "kafka_consume": compare([90.0, 95.0, 100.0], [100.0, 100.0, 100.0]),
        },
    }

    table = markdown(result)

    assert "| Kafka produce (confluent-kafka, idempotent, acks=all, lz4) | 710 (700–720) | " \
           "1,000 (1,000–1,000) | **0.71** (0.70–0.72) |" in table
    assert "**0.95** (0.90–1.00), within noise |" in table
    assert "not measured: --kafka-only" in table


def test_a_cost_is_claimed_only_when_every_round_agrees() -> None:
    assert distinguishable(compare([80.0, 85.0, 90.0], [100.0, 100.0, 100.0]))
    assert distinguishable(compare([120.0, 110.0], [100.0, 100.0]))
    assert not distinguishable(compare([80.0, 105.0, 90.0], [100.0, 100.0, 100.0]))
