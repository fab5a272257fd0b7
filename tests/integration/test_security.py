"""The local stack is secured by default: nobody gets in without credentials, and each
principal gets only what deploy/security/{kafka-acls,elasticsearch-roles}.yaml grant it.

Runs against the real stack of this home (``vigie stack up``), with the credentials the stack
generated (``deploy.local.stack.security``).
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import NewTopic
from elasticsearch import AuthorizationException, Elasticsearch

from deploy.local import stack as local
from deploy.local.credentials import LocalSecurity
from deploy.security.elasticsearch_roles import regional_user
from runtime.kafka import KafkaConnection
from runtime.settings import Settings
from schemas import indices
from schemas.organization import Region
from schemas.topics import ALERTS, DETECTIONS, EVENTS_RAW, INCIDENTS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def security(stack: Settings) -> LocalSecurity:
    return local.security()


@pytest.fixture(scope="module")
def agent(security: LocalSecurity) -> KafkaConnection:
    return security.kafka("agent")


def _deliver(kafka: KafkaConnection, topic: str) -> KafkaError | None:
    """Produce one record; the delivery error (None: delivered)."""
    producer = kafka.producer(**{"message.timeout.ms": 15000})
    outcome: list[KafkaError | None] = []
    producer.produce(topic, key=b"k", value=b"{}", on_delivery=lambda e, _m: outcome.append(e))
    producer.flush(30)
    assert outcome, "no delivery report within 30 s"
    return outcome[0]


# --- nobody without credentials ---------------------------------------------------------
def test_a_plaintext_client_gets_nothing_from_either_kafka_port(security: LocalSecurity) -> None:
    for port in (security.ports.stack_kafka_port, security.ports.stack_controller_port):
        admin = KafkaConnection(bootstrap=f"localhost:{port}").admin(
            **{"log_level": 0, "socket.timeout.ms": 3000})
        with pytest.raises(KafkaException):
            admin.list_topics(timeout=5)


def test_tls_without_a_sasl_credential_is_refused(security: LocalSecurity) -> None:
    anonymous = KafkaConnection(bootstrap=security.bootstrap, security_protocol="SSL",
                                ssl_cafile=security.pki.ca_cert)
    with pytest.raises(KafkaException):
        anonymous.admin(**{"log_level": 0}).list_topics(timeout=5)


def test_elasticsearch_needs_tls_and_credentials(security: LocalSecurity) -> None:
    port = security.ports.stack_es_port
    with pytest.raises((urllib.error.URLError, ConnectionError)):  # plain HTTP: no answer
        urllib.request.urlopen(f"http://localhost:{port}/_cluster/health", timeout=5)
    context = ssl.create_default_context(cafile=str(security.pki.ca_cert))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"https://localhost:{port}/_cluster/health", timeout=5,
                               context=context)
    assert refused.value.code == 401


# --- an agent writes events.raw and nothing else ------------------------------------------
def test_an_agent_may_produce_to_events_raw(agent: KafkaConnection) -> None:
    assert _deliver(agent, EVENTS_RAW.name) is None


@pytest.mark.parametrize("topic", [DETECTIONS.name, INCIDENTS.name, ALERTS.name])
def test_an_agent_may_not_produce_to_the_national_topics(agent: KafkaConnection,
                                                         topic: str) -> None:
    error = _deliver(agent, topic)
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, error


def _errors_until(consumer: Consumer, wanted: int, seconds: int = 20) -> list[int]:
    """Error codes the consumer reports until ``wanted`` shows; fails if it reads a record."""
    codes: list[int] = []
    for _ in range(seconds):
        message = consumer.poll(1.0)
        if message is None:
            continue
        error = message.error()
        assert error is not None, f"read a record of {message.topic()}"
        codes.append(int(error.code()))
        if codes[-1] == wanted:
            break
    return codes


def test_an_agent_may_not_read_events_raw(agent: KafkaConnection) -> None:
    """Fetching by partition, no group involved: only the topic's READ right is asked."""
    consumer = agent.consumer("unused", **{"auto.offset.reset": "earliest"})
    try:
        consumer.assign([TopicPartition(EVENTS_RAW.name, p, OFFSET_BEGINNING)
                         for p in range(EVENTS_RAW.partitions)])
        codes = _errors_until(consumer, KafkaError.TOPIC_AUTHORIZATION_FAILED)
        assert KafkaError.TOPIC_AUTHORIZATION_FAILED in codes, codes
    finally:
        consumer.close()


def test_an_agent_may_not_join_the_sinks_group(agent: KafkaConnection) -> None:
    """events.raw is visible to the agent (it writes there): the refusal is the group's."""
    consumer = agent.consumer("vigie-sink")
    try:
        consumer.subscribe([EVENTS_RAW.name])
        codes = _errors_until(consumer, KafkaError.GROUP_AUTHORIZATION_FAILED)
        assert KafkaError.GROUP_AUTHORIZATION_FAILED in codes, codes
    finally:
        consumer.close()


def test_an_agent_may_not_create_or_delete_topics(agent: KafkaConnection) -> None:
    admin = agent.admin()
    name = f"vigie-security-test-{uuid.uuid4().hex[:8]}"
    with pytest.raises(KafkaException) as created:
        admin.create_topics([NewTopic(name, 1, 1)], request_timeout=15)[name].result()
    assert created.value.args[0].code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED,
                                            KafkaError.CLUSTER_AUTHORIZATION_FAILED)
    with pytest.raises(KafkaException) as deleted:
        admin.delete_topics([EVENTS_RAW.name], request_timeout=15)[EVENTS_RAW.name].result()
    assert deleted.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


# --- a regional operator sees its region only ----------------------------------------------
def test_a_regional_operator_sees_only_its_region(security: LocalSecurity, two_regions: str
                                                  ) -> None:
    bretagne = Elasticsearch(security.es_url, ca_certs=str(security.pki.ca_cert),
                             basic_auth=security.es_auth(regional_user(Region.BRETAGNE)))
    query = {"term": {"tags": two_regions}}
    hits = bretagne.search(index=f"{indices.EVENTS.alias}-{Region.BRETAGNE.value}",
                           query=query)["hits"]["hits"]
    assert [h["_source"]["organization"]["region"] for h in hits] == ["bretagne"], json.dumps(
        hits)
    # A wildcard resolves to what the user may read: its region's aliases only.
    hits = bretagne.search(index="vigie-*", query=query)["hits"]["hits"]
    assert [h["_source"]["organization"]["region"] for h in hits] == ["bretagne"], json.dumps(
        hits)
    for national in (indices.EVENTS.alias, indices.INCIDENTS.alias,
                     indices.EVENTS.index_for(datetime(2001, 3, 1, tzinfo=UTC)),
                     f"{indices.EVENTS.alias}-{Region.CORSE.value}"):
        with pytest.raises(AuthorizationException) as refused:
            bretagne.search(index=national, query=query)
        assert refused.value.meta.status == 403


# --- least privilege of the writers and readers ---------------------------------------------
def _es_as(security: LocalSecurity, user: str) -> Elasticsearch:
    return Elasticsearch(security.es_url, ca_certs=str(security.pki.ca_cert),
                         basic_auth=security.es_auth(user), request_timeout=30)


def test_the_sink_user_may_not_manage_templates_or_read_events(security: LocalSecurity) -> None:
    sink = _es_as(security, "vigie-sink")
    with pytest.raises(AuthorizationException):
        sink.indices.put_index_template(name="vigie-events", index_patterns=["vigie-events-*"])
    with pytest.raises(AuthorizationException):
        sink.search(index=indices.EVENTS.alias, size=1)


def test_the_report_runs_without_the_refresh_privilege(security: LocalSecurity) -> None:
    from datetime import date

    from soc.report import national_report

    report = _es_as(security, "vigie-report")
    with pytest.raises(AuthorizationException):
        report.indices.refresh(index=indices.INCIDENTS.alias)
    figures = national_report(report, date(2001, 1, 1), date(2001, 2, 1))
    assert figures.incidents == 0
