"""Vigie: the command line and the runtime pieces every process shares (settings, logs, metrics).

The data flow itself lives in the top-level packages: ``producers`` → ``processors`` →
``sinks``, with ``schemas`` owning the wire formats and ``deploy`` the services.
"""

__version__ = "0.1.0"
