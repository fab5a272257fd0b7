"""Sigma correlation rules (specification v2) evaluated in the stream.

``model`` compiles the pySigma correlation rules (references, aliases, condition, ``generate``),
``state`` is one group's window as JSON-able data (``WindowState``), ``evaluate`` feeds signals
to windows and returns matches, ``signals`` converts from and to the wire ``Detection`` and
holds the stage itself (``SigmaCorrelationStage``: a record in, detections and window writes
out), and ``stages`` wires it on a Faust topic, table and timer.
"""

from processors.detection.correlation.evaluate import CorrelationMatch, Correlator, Signal
from processors.detection.correlation.model import CompiledCorrelation, CorrelationSet

__all__ = ["CompiledCorrelation", "CorrelationMatch", "CorrelationSet", "Correlator", "Signal"]
