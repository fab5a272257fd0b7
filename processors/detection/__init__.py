"""Sigma detection in the stream: parse (pySigma) → compile → evaluate.

    engine = Engine.from_paths()          # the shared SigmaHQ rule folders
    for match in engine.evaluate(event):  # event: the Winlogbeat-shaped dict
        ...

``loader`` reads rule files, ``logsource`` routes rules to Windows events, ``fieldmap`` says
where a Sigma field lives in the event, ``modifiers`` what each value modifier means,
``compiler`` builds the predicates and ``engine`` indexes and runs them.
"""

from processors.detection.compiler import CompiledRule, UnsupportedRule, compile_rule
from processors.detection.engine import Engine, EngineReport
from processors.detection.fieldmap import DEFAULT_FIELDMAP, FieldMap
from processors.detection.loader import RuleSet, default_rule_dirs, load_rule_file, load_rules
from processors.detection.model import Match, RuleInfo, SkippedRule

__all__ = [
    "DEFAULT_FIELDMAP",
    "CompiledRule",
    "Engine",
    "EngineReport",
    "FieldMap",
    "Match",
    "RuleInfo",
    "RuleSet",
    "SkippedRule",
    "UnsupportedRule",
    "compile_rule",
    "default_rule_dirs",
    "load_rule_file",
    "load_rules",
]
