"""False positives on a second benign corpus: project-written analysis cells.

tests/corpora/analysis-cells/cells.txt holds realistic notebook cells (pandas EDA, groupby,
pivots, merges, dates, seaborn, matplotlib, sklearn, statsmodels, scipy.stats, plotly, small
helper functions and classes, outputs), separated by ``# %% <title>`` lines. Fails when more
than 2% are refused, and when a refusal is not one of those listed in docs/safety.md.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from jupyter_analyst.safety import SafetyValidator

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests/corpora/analysis-cells/cells.txt"
MAX_REFUSED = 0.02


def load_cells() -> dict[str, str]:
    text = CORPUS.read_text(encoding="utf-8")
    cells = {}
    for chunk in re.split(r"^# %% ", text, flags=re.M)[1:]:
        title, _, code = chunk.partition("\n")
        assert title not in cells, f"duplicate title {title!r}"
        cells[title.strip()] = code
    return cells


@pytest.fixture(scope="module")
def refused() -> dict[str, list[str]]:
    cells = load_cells()
    assert len(cells) >= 120
    validator = SafetyValidator()
    result = {}
    for title, code in cells.items():
        ast.parse(code)  # every cell is real Python
        report = validator.validate(code)
        if not report.allowed:
            result[title] = sorted({f.rule for f in report.violations})
    return result


def test_at_most_two_percent_of_the_cells_are_refused(refused):
    assert len(refused) / len(load_cells()) <= MAX_REFUSED, refused


def test_every_refusal_is_justified_in_the_docs(refused):
    section = (ROOT / "docs/safety.md").read_text(encoding="utf-8").split(
        "<!-- analysis-cells-refusals -->")[1]
    documented = set(re.findall(r"^\| ([^|]+?) \|", section, re.M)) - {"cell", "---"}
    assert set(refused) == documented, refused
