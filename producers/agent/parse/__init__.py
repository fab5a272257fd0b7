"""Parsers: raw records of each source → wire documents in ``SecurityEvent`` shape (ECS)."""
