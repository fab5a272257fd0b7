"""Vigie's local stack: real Kafka and Elasticsearch, without Docker (see :mod:`.stack`)."""
