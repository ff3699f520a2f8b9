"""Fidelity and kernel-reuse speed of the sandbox on DS-1000's test programs.

    .venv/bin/python bench/ds1000_sandbox.py [--limit N] [--problems 0,5,519] [--no-local]

Each problem's check program (``code_context`` + ``code = <reference>`` +
``test_execution(code)`` [+ ``test_string(code)``], the benchmark's protocol) runs
three ways, interleaved problem by problem so all ways see the same machine load:

1. plain: a fresh ``python`` process of this venv per program, cwd a fresh temp dir
   (the reference behaviour and the "fresh process each" speed baseline);
2. docker: ONE warm Docker sandbox kernel for all programs;
3. local: ONE warm local-backend kernel for all programs (``--no-local`` skips it).

In a kernel each program runs isolated: its own globals dict, its own fresh working
directory under /tmp (removed after), matplotlib settings restored and figures closed
after. The validator is bypassed on purpose: this measures the sandbox. A program
that passes is one that runs to the end without an exception; each has a wall-clock
timeout (``--timeout``, 60 s), after which the kernel is interrupted or restarted.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from validator_ds1000 import DEFAULT_CORPUS, load

from jupyter_analyst.layout import CONTAINER
from jupyter_analyst.sandbox import SandboxLimits, open_sandbox

SEABORN_DATA = DEFAULT_CORPUS.parents[1] / "seaborn-data"
LIBRARIES = ("Pandas", "Numpy", "Matplotlib", "Scipy", "Sklearn")
# What the programs import, plus the kernel's own packages, for the version table.
PACKAGES = ("pandas", "numpy", "scipy", "scikit-learn", "matplotlib", "seaborn", "pillow",
            "statsmodels", "pyarrow", "pyyaml", "ipykernel")
# Known not to pass anywhere here (README of the corpus): torch, xgboost, network.
EXPECTED_FAILURES = {377: "needs torch", 378: "needs torch", 837: "needs xgboost",
                     838: "needs xgboost", 819: "downloads a data set"}

# Runs in the kernel: one program in a fresh namespace and a fresh directory.
# rc_context undoes style changes (sns.set_style, plt.rc) so they do not leak.
KERNEL_RUNNER = """\
def _ds1000_run(program, seaborn_data):
    import os, shutil, tempfile, matplotlib, matplotlib.pyplot as plt
    os.environ["SEABORN_DATA"] = seaborn_data
    home, workdir = os.getcwd(), tempfile.mkdtemp(prefix="ds1000-", dir="/tmp")
    os.chdir(workdir)
    try:
        with matplotlib.rc_context():
            exec(compile(program, "<ds1000>", "exec"), {{"__name__": "__main__"}})
    finally:
        plt.close("all")
        os.chdir(home)
        shutil.rmtree(workdir, ignore_errors=True)
try:
    _ds1000_run({program!r}, {seaborn_data!r})
finally:
    del _ds1000_run
"""

VERSIONS = """\
import importlib.metadata as _md, json as _json, platform as _pf
def _v(name):
    try:
        return _md.version(name)
    except _md.PackageNotFoundError:
        return "not installed"
print(_json.dumps({{"python": _pf.python_version(), **{{p: _v(p) for p in {packages!r}}}}}))
del _md, _json, _pf, _v
"""


EXCEPTION_LINE = re.compile(r"[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b")


@dataclass
class Outcome:
    passed: bool
    seconds: float
    error: str = ""  # "ExcName: message", shortened


def program_of(problem: dict) -> str:
    """The benchmark's check program for the reference solution."""
    lines = [problem["code_context"], f"code = {problem['reference_code']!r}",
             "test_execution(code)"]
    if problem["has_test_string"]:
        lines.append("test_string(code)")
    return "\n".join(lines) + "\n"


def shorten(text: str, limit: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def host_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def run_plain(program: str, timeout: float) -> Outcome:
    env = {**os.environ, "MPLBACKEND": "Agg", "SEABORN_DATA": str(SEABORN_DATA)}
    with tempfile.TemporaryDirectory(prefix="ds1000-") as workdir:
        started = time.perf_counter()
        try:
            done = subprocess.run([sys.executable, "-c", program], cwd=workdir, env=env,
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return Outcome(False, time.perf_counter() - started, f"timeout after {timeout:g} s")
        seconds = time.perf_counter() - started
    if done.returncode == 0:
        return Outcome(True, seconds)
    return Outcome(False, seconds, shorten(exception_line(done.stderr, done.returncode)))


def exception_line(stderr: str, returncode: int) -> str:
    """The traceback's "ExcName: message" line (a message can span several lines)."""
    lines = stderr.strip().splitlines()
    named = [line for line in lines if EXCEPTION_LINE.match(line)]
    return (named or lines or [f"exit code {returncode}"])[-1]


class WarmKernel:
    """One sandbox kernel reused for every program."""

    def __init__(self, backend: str, timeout: float):
        self.backend = backend
        self.timeout = timeout
        self.sandbox = None
        self.seaborn_data = ""
        self.restarts = 0

    async def start(self) -> float:
        started = time.perf_counter()
        self.sandbox, _ = open_sandbox(self.backend, SandboxLimits.from_env(timeout=self.timeout))
        await self.sandbox.start()
        # data/ is the sandbox's data mount (read-only inside the container).
        shutil.copytree(SEABORN_DATA, self.sandbox.data_dir / "seaborn-data")
        inside = CONTAINER.data if self.backend == "docker" else self.sandbox.data_dir
        self.seaborn_data = f"{inside}/seaborn-data"
        return time.perf_counter() - started

    async def versions(self) -> dict[str, str]:
        execution = await self.sandbox.execute(VERSIONS.format(packages=PACKAGES))
        text = "".join(o.get("text", "") for o in execution.outputs if o["output_type"] == "stream")
        return json.loads(text) if execution.status == "ok" else {}

    async def run(self, program: str) -> Outcome:
        code = KERNEL_RUNNER.format(program=program, seaborn_data=self.seaborn_data)
        started = time.perf_counter()
        execution = await self.sandbox.execute(code, timeout=self.timeout)
        seconds = time.perf_counter() - started
        self.restarts += execution.restarted
        if execution.status == "ok":
            return Outcome(True, seconds)
        if execution.status == "error":
            error = execution.error
            return Outcome(False, seconds, shorten(f"{error['ename']}: {error['evalue']}"))
        restarted = " (kernel restarted)" if execution.restarted else ""
        return Outcome(False, seconds, f"{execution.status} after {seconds:.0f} s{restarted}")

    async def shutdown(self) -> None:
        if self.sandbox is not None:
            await self.sandbox.shutdown()


def summarise(problems: list[dict], results: dict[str, dict[int, Outcome]],
              versions: dict[str, dict[str, str]], startup: dict[str, float]) -> None:
    ways = list(results)
    print("\n## Library versions")
    names = ["python", *PACKAGES]
    print(f"{'package':<14}" + "".join(f"{way:>16}" for way in ways))
    for name in names:
        print(f"{name:<14}" + "".join(f"{versions[way].get(name, '?'):>16}" for way in ways))

    print("\n## Passing programs per library")
    print(f"{'library':<12}{'problems':>9}" + "".join(f"{way:>10}" for way in ways))
    for library in (*LIBRARIES, "total"):
        ids = [p["problem_id"] for p in problems if library in (p["library"], "total")]
        if not ids:
            continue
        counts = "".join(f"{sum(results[way][i].passed for i in ids):>10}" for way in ways)
        print(f"{library:<12}{len(ids):>9}{counts}")

    print("\n## Wall time per program (same run, interleaved)")
    print(f"{'way':<10}{'total s':>10}{'median s':>10}{'mean s':>10}  start-up s")
    medians = {}
    for way in ways:
        times = [o.seconds for o in results[way].values()]
        medians[way] = statistics.median(times)
        print(f"{way:<10}{sum(times):>10.1f}{medians[way]:>10.3f}{statistics.mean(times):>10.3f}"
              f"  {startup.get(way, 0.0):.1f}")
    for way in ways[1:]:
        total_ratio = (sum(o.seconds for o in results["plain"].values())
                       / sum(o.seconds for o in results[way].values()))
        print(f"fresh process vs warm {way} kernel: {medians['plain'] / medians[way]:.1f}x "
              f"(median), {total_ratio:.1f}x (total)")

    print("\n## Outcomes that differ from the plain process")
    for way in ways[1:]:
        differing = [p for p in problems
                     if results[way][p["problem_id"]].passed
                     != results["plain"][p["problem_id"]].passed]
        print(f"\n### {way}: {len(differing)} differ")
        for problem in differing:
            pid = problem["problem_id"]
            plain, other = results["plain"][pid], results[way][pid]
            print(f"{pid:>4} {problem['library']:<10} plain {'pass' if plain.passed else 'FAIL'}"
                  f", {way} {'pass' if other.passed else 'FAIL'}: {other.error or plain.error}")

    print("\n## Failing in the plain process (library versions, missing packages)")
    for problem in problems:
        outcome = results["plain"][problem["problem_id"]]
        if not outcome.passed:
            note = EXPECTED_FAILURES.get(problem["problem_id"], "")
            print(f"{problem['problem_id']:>4} {problem['library']:<10} {outcome.error}"
                  + (f"  [{note}]" if note else ""))


async def main(args: argparse.Namespace) -> int:
    problems = load(args.corpus)
    if args.problems:
        wanted = {int(x) for x in args.problems.split(",")}
        problems = [p for p in problems if p["problem_id"] in wanted]
    if args.limit:
        problems = problems[: args.limit]
    ways = ["docker"] + ([] if args.no_local else ["local"])
    kernels = {way: WarmKernel(way, args.timeout) for way in ways}
    results: dict[str, dict[int, Outcome]] = {"plain": {}, **{way: {} for way in ways}}
    versions = {"plain": host_versions()}
    startup: dict[str, float] = {}
    started = time.perf_counter()
    try:
        for way, kernel in kernels.items():
            startup[way] = await kernel.start()
            versions[way] = await kernel.versions()
        for n, problem in enumerate(problems, 1):
            pid, program = problem["problem_id"], program_of(problem)
            results["plain"][pid] = run_plain(program, args.timeout)
            for way, kernel in kernels.items():
                results[way][pid] = await kernel.run(program)
            if args.progress:
                marks = " ".join(f"{w}={'ok' if r[pid].passed else 'FAIL'}"
                                 for w, r in results.items())
                print(f"[{n}/{len(problems)}] {pid} {marks}", file=sys.stderr, flush=True)
    finally:
        for kernel in kernels.values():
            await kernel.shutdown()
    print(f"# DS-1000 in the sandbox: {len(problems)} programs, timeout {args.timeout:g} s, "
          f"run time {time.perf_counter() - started:.0f} s")
    print("kernel restarts: " + ", ".join(f"{w} {k.restarts}" for w, k in kernels.items()))
    summarise(problems, results, versions, startup)
    if args.json:
        args.json.write_text(json.dumps(
            {way: {pid: vars(o) for pid, o in r.items()} for way, r in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--limit", type=int, help="only the first N problems")
    parser.add_argument("--problems", help="comma-separated problem ids")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per program")
    parser.add_argument("--no-local", action="store_true", help="skip the local backend")
    parser.add_argument("--progress", action="store_true", help="one line per problem on stderr")
    parser.add_argument("--json", type=Path, help="write every outcome to this file")
    sys.exit(asyncio.run(main(parser.parse_args())))
