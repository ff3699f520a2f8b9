"""False positives and speed of the safety validator on DS-1000's reference solutions.

    .venv/bin/python bench/validator_ds1000.py [--markdown] [--corpus PATH]

Runs every ``reference_code`` (887 real pandas/numpy/scipy/sklearn/matplotlib solutions)
through ``SafetyValidator``. 50 references are the indented body of a function that the
problem's ``exec_context`` defines around ``[insert]``; those are checked with that ``def``
line in front, which is how they run. The command prints how many are refused, a table of
every refusal with its rules and reasons, and the validation time per snippet. The first
pass is timed separately (it imports the libraries the validator inspects); the per-snippet
figures come from a second, warm pass, which is what a running notebook sees.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

from jupyter_analyst.safety import SafetyValidator

DEFAULT_CORPUS = (Path(__file__).resolve().parents[1]
                  / "tests/corpora/ds1000/ds1000_references.jsonl")


def load(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def snippet(problem: dict) -> str:
    """The reference as it runs: an indented body gets its enclosing ``def`` line back."""
    code = problem["reference_code"]
    first = next((line for line in code.splitlines()
                  if line.strip() and not line.lstrip().startswith("#")), "")
    context = re.search(r'exec_context\s*=\s*r?"""(.*?)"""', problem["code_context"], re.S)
    if not first[:1].isspace() or not context:
        return code
    before_insert = context.group(1).split("[insert]")[0].splitlines()
    header = next(line for line in reversed(before_insert) if line.lstrip().startswith("def "))
    return header.strip() + "\n" + code


def measure(problems: list[dict], validator: SafetyValidator | None = None) -> dict:
    """Validate every reference; returns refusals, timings and counts."""
    validator = validator or SafetyValidator()
    started = time.perf_counter()
    snippets = [snippet(p) for p in problems]
    reports = [validator.validate(code) for code in snippets]
    cold_seconds = time.perf_counter() - started
    timings = []
    for code in snippets:
        start = time.perf_counter()
        validator.validate(code)
        timings.append(time.perf_counter() - start)
    refused = [(p, r) for p, r in zip(problems, reports) if not r.allowed]
    flagged = [(p, r) for p, r in zip(problems, reports) if r.allowed and r.warnings]
    timings.sort()
    return {
        "total": len(problems),
        "refused": refused,
        "flagged": flagged,
        "cold_seconds": cold_seconds,
        "median_ms": statistics.median(timings) * 1000,
        "p95_ms": timings[int(0.95 * (len(timings) - 1))] * 1000,
        "max_ms": timings[-1] * 1000,
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--markdown", action="store_true", help="print tables as Markdown")
    args = parser.parse_args(argv)
    result = measure(load(args.corpus))
    total, refused = result["total"], result["refused"]
    print(f"DS-1000 references: {total}")
    print(f"refused: {len(refused)} ({100 * len(refused) / total:.2f}%)")
    print(f"allowed with warnings: {len(result['flagged'])}")
    print(f"first pass (imports libraries for inspection): {result['cold_seconds']:.2f} s")
    print(f"warm validation time per snippet: median {result['median_ms']:.2f} ms, "
          f"p95 {result['p95_ms']:.2f} ms, max {result['max_ms']:.2f} ms")
    print()
    if args.markdown:
        print("| problem | library | risk | rule | line | reason |")
        print("|---|---|---|---|---|---|")
    for problem, report in refused:
        for finding in report.violations:
            row = (problem["problem_id"], problem["library"], report.risk_level.value,
                   finding.rule, finding.line, finding.message)
            if args.markdown:
                print("| " + " | ".join(_cell(str(c)) for c in row) + " |")
            else:
                print("{:>4}  {:<10}  {:<8}  {:<18}  line {:<3}  {}".format(*row))
    if result["flagged"]:
        print("\nallowed, with warnings:")
        for problem, report in result["flagged"]:
            for finding in report.warnings:
                print(f"{problem['problem_id']:>4}  {problem['library']:<10}  {finding}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
