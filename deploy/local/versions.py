"""The server versions the local stack runs: written once, here, with the reason for each.

Everything else in ``deploy.local`` (the Maven fetch, the cache layout, ``vigie stack status``)
reads these constants, so moving to another release is a one-line change plus a test run.
"""

from __future__ import annotations

#: Apache Kafka, ``org.apache.kafka:kafka_2.13`` on Maven Central. 4.4.0 is the newest release
#: Maven Central serves; it runs KRaft only (no ZooKeeper), on Java 17. aiokafka 0.14 (what Faust
#: uses) was checked against it: produce, consumer groups, commits and transactions all work.
KAFKA_VERSION = "4.4.0"

#: Scala build of the Kafka server jar (``kafka_<scala>``); 2.13 is the only one for 4.x.
KAFKA_SCALA_VERSION = "2.13"

#: The kafka_2.13 POM pulls log4j-core and slf4j-api but no binding between them (the binary
#: tarball adds ``log4j-slf4j-impl`` itself). Without it the broker logs nothing, so we add the
#: binding at the log4j version kafka_2.13 4.4.0 already depends on (slf4j 1.7 -> slf4j-impl).
KAFKA_LOG4J_VERSION = "2.25.5"

#: Elasticsearch, ``org.elasticsearch.distribution.integ-test-zip:elasticsearch`` (zip). Its
#: maven-metadata.xml only lists up to 8.19, yet 9.x zips are served: 9.5.0 resolves (9.5.1
#: does not, 9.2.4 does), so 9.5.0 is the newest 9.x that resolves. It needs Java 21+. The
#: integ-test zip has only the server, transport-netty4, apm and x-pack core/security: no
#: Painless, no ingest pipelines, no data streams, and ``GET /`` answers 405 (health is probed
#: with ``GET /_cluster/health`` instead).
ES_VERSION = "9.5.0"

#: Oldest Java each server accepts (Kafka 4.x brokers: 17; Elasticsearch 9: 21).
KAFKA_MIN_JAVA = 17
ES_MIN_JAVA = 21
