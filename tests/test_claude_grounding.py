"""Grounding of insight numbers in the executed results (no server needed)."""

import pytest

from jupyter_analyst.generation.grounding import ground_insights

pytestmark = pytest.mark.llm

METRICS = {"mean_tip": 2.99827868852459, "total_return": -0.04213, "revenue": 1234567.0,
           "rows": 244, "note": "best month 12.5%", "flag": True}
OUTPUT = "day  tip\nSat  3.1\n2023-01-05  1,234.5\n"


@pytest.mark.parametrize("statement", [
    "The average tip is 3.0 dollars.",        # rounded to the decimals written
    "The average tip is 2.998.",
    "The portfolio fell 4.2%.",               # percentage of a fraction, sign dropped in prose
    "Revenue reached 1.2M.",                  # suffix
    "Revenue reached 1.23 million.",
    "On 2023-01-05 the total was 1,200.",     # date parts and a round figure from the output
    "There are 244 rows in 3 groups.",        # small counts are wording
    "The best month was 12.5%.",              # number written inside a metric string
    "Saturday's median tip was 3.10.",
    "Question mentioned 2019.",               # numbers in the question are known
])
def test_grounded_statements_are_kept_as_written(statement):
    assert ground_insights([statement], METRICS, OUTPUT, "compare with 2019") == [statement]


@pytest.mark.parametrize("statement, missing", [
    ("The average tip is 4.25.", "4.25"),
    ("Tips grew 17% year on year.", "17%"),
    ("The average tip is 3.01 and the best day made 512.", "3.01, 512"),
    ("Revenue reached 2.5M.", "2.5M"),
    ("Losses were -55 on the worst day.", "-55"),
    ("True counts as 1 but 11 is checked.", "11"),
])
def test_invented_numbers_are_flagged(statement, missing):
    [flagged] = ground_insights([statement], METRICS, OUTPUT)
    assert flagged == f"{statement} (unverified: {missing} not in the results)"
