"""False positives on real analysis code: DS-1000's 887 reference solutions.

Fails when more than 1% are refused, and when a refusal is not one of the justified
refusals listed in docs/safety.md (so every refusal stays explained there).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from jupyter_analyst.safety import SafetyValidator

ROOT = Path(__file__).resolve().parents[1]
MAX_REFUSED = 0.01


def _bench():
    spec = importlib.util.spec_from_file_location("validator_ds1000",
                                                  ROOT / "bench/validator_ds1000.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def refused() -> dict[int, list[str]]:
    bench = _bench()
    if not bench.DEFAULT_CORPUS.exists():
        pytest.fail(f"DS-1000 corpus missing: {bench.DEFAULT_CORPUS}")
    problems = bench.load(bench.DEFAULT_CORPUS)
    assert len(problems) == 887
    validator = SafetyValidator()
    result = {}
    for problem in problems:
        report = validator.validate(bench.snippet(problem))
        if not report.allowed:
            result[problem["problem_id"]] = sorted({f.rule for f in report.violations})
    return result


def test_at_most_one_percent_of_ds1000_references_are_refused(refused):
    assert len(refused) / 887 <= MAX_REFUSED, refused


def test_every_refusal_is_justified_in_the_docs(refused):
    table = (ROOT / "docs/safety.md").read_text(encoding="utf-8")
    section = table.split("<!-- ds1000-refusals -->")[1]
    documented = {int(n) for n in re.findall(r"^\| (\d+) \|", section, re.M)}
    assert set(refused) == documented, refused
