"""First validator (walking skeleton): replaced by the full allow-list validator."""

from __future__ import annotations

import ast

from .report import Finding, RiskLevel, SafetyReport

ALLOWED_IMPORTS = {"pandas", "numpy", "matplotlib", "scipy", "statsmodels", "sklearn", "seaborn",
                   "plotly", "math", "statistics", "datetime", "json", "re", "collections",
                   "itertools", "jupyter_analyst"}
FORBIDDEN_NAMES = {"eval", "exec", "compile", "__import__", "open", "getattr", "globals"}


class SafetyValidator:
    def validate(self, code: str) -> SafetyReport:
        report = SafetyReport()
        try:
            tree = ast.parse(code)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            report.add(Finding("syntax", f"Code does not parse: {exc}", severity=RiskLevel.CRITICAL))
            return report
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for name in names:
                    if name.split(".")[0] not in ALLOWED_IMPORTS:
                        report.add(Finding("import", f"Import of '{name}' is not allowed", node.lineno, node.col_offset))
            elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
                report.add(Finding("name", f"'{node.id}' is not allowed", node.lineno, node.col_offset, RiskLevel.CRITICAL))
            elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
                report.add(Finding("attribute", f"Attribute '{node.attr}' is not allowed", node.lineno, node.col_offset))
        return report
