"""The safety verdict on a piece of code, shared by the validator, the agent and the UI."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from enum import Enum


class RiskLevel(str, Enum):
    SAFE = "safe"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(RiskLevel).index(self)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Finding:
    """One reason for concern, written for a person and for the code generator."""

    rule: str
    message: str
    line: int = 0
    col: int = 0
    severity: RiskLevel = RiskLevel.HIGH

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.message} [{self.rule}]"


@dataclass
class SafetyReport:
    risk_level: RiskLevel = RiskLevel.SAFE
    violations: list[Finding] = field(default_factory=list)  # HIGH and CRITICAL findings
    warnings: list[Finding] = field(default_factory=list)  # LOW and MEDIUM findings
    code_sha256: str = ""  # of the exact text that was checked; see ``matches``

    @property
    def allowed(self) -> bool:
        return self.risk_level.rank < RiskLevel.HIGH.rank

    @property
    def findings(self) -> list[Finding]:
        return sorted(self.violations + self.warnings, key=lambda f: (f.line, f.col))

    def matches(self, code: str) -> bool:
        """True if ``code`` is exactly the text this report is about (run only that)."""
        digest = hashlib.sha256(code.encode("utf-8", "surrogatepass")).hexdigest()
        return bool(self.code_sha256) and digest == self.code_sha256

    def add(self, finding: Finding) -> None:
        if finding.severity.rank >= RiskLevel.HIGH.rank:
            self.violations.append(finding)
        elif finding.severity is not RiskLevel.SAFE:
            self.warnings.append(finding)
        if finding.severity.rank > self.risk_level.rank:
            self.risk_level = finding.severity

    def summary(self) -> str:
        """Plain text for the user and for a repair prompt."""
        if not self.findings:
            return f"Risk: {self.risk_level.value}. No findings."
        lines = [f"Risk: {self.risk_level.value}."]
        lines += [f"- {f}" for f in self.findings]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "risk_level": self.risk_level.value,
            "allowed": self.allowed,
            "violations": [_finding_dict(f) for f in self.violations],
            "warnings": [_finding_dict(f) for f in self.warnings],
            "code_sha256": self.code_sha256,
        }


def _finding_dict(finding: Finding) -> dict:
    data = asdict(finding)
    data["severity"] = finding.severity.value
    return data
