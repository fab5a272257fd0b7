"""The read side, for the SOC: operator queries, the national report, retention, evaluation
against a simulation's truth, reconciliation counts and hunting over files.

It reads Elasticsearch (and runs the Sigma engine over files); it never writes the pipeline's
topics. It sits above ``producers``, ``processors`` and ``sinks``.
"""
