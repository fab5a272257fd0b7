"""What operators read back from Elasticsearch: incident queries, the national report."""
