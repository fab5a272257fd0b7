"""Who may do what on Kafka and Elasticsearch: declared once here, applied by the local stack
and usable against a real cluster."""
