"""End-to-end benchmark of the pipeline on the local stack (``make bench``).

How close does simulator → processor → sink → searchable come to what Kafka and
Elasticsearch alone do on the same machine with the same records, how does it scale with
workers, establishments and rules, and where does the time go. See ``bench/e2e/__main__.py``.
"""
