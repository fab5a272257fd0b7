"""Vigie's command line (``vigie``, :mod:`vigie.cli`), and nothing else: the shared runtime
pieces (settings, logs, metrics, errors) live in ``runtime``.

The data flow itself lives in the top-level packages: ``producers`` → ``processors`` →
``sinks``, with ``schemas`` owning the wire formats and ``deploy`` the services.
"""

__version__ = "0.1.0"
