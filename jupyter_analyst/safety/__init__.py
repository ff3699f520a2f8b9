"""Static safety check of generated code: a fail-closed allow-list over the AST."""

from .report import Finding, RiskLevel, SafetyReport
from .validator import SafetyValidator

__all__ = ["Finding", "RiskLevel", "SafetyReport", "SafetyValidator"]
