"""The runtime every Vigie process stands on: settings, logs, metrics, errors, back-off, the
Kafka and Elasticsearch connection objects, topic administration and the registry files.

It sits just above ``schemas`` and below everything else; it imports no national-only
dependency at module level, so the hospital agent can use it alone.
"""
