"""The hospital agent: collect, parse, pseudonymise, sign, spool and ship security events.

Data flow inside one agent process (one module per step)::

    sources/ (evtx, jsonfile, syslog, authlog, cef; files tailed by follow.py)
      → parse/ (→ SecurityEvent, ECS + winlog.*)  → pseudonymise.py (keyed HMAC)
      → sign.py (Ed25519 over the value bytes)   → spool.py (durable, bounded, ordered)
      → ship.py (idempotent producer, EPS cap)   → Kafka events.raw
"""
