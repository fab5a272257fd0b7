"""Sigma correlation rules (specification v2) evaluated in the stream.

``model`` compiles the pySigma correlation rules (references, aliases, condition, ``generate``),
``state`` is one group's window as JSON-able data, ``evaluate`` feeds signals to windows and
returns matches, ``signals`` converts from and to the wire ``Detection``, and ``agents`` wires
it all on Faust tables.
"""

from processors.detection.correlation.evaluate import CorrelationMatch, Correlator, Signal
from processors.detection.correlation.model import CompiledCorrelation, CorrelationSet

__all__ = ["CompiledCorrelation", "CorrelationMatch", "CorrelationSet", "Correlator", "Signal"]
