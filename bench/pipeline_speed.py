"""The whole pipeline against its lower bounds, side by side in one run.

    .venv/bin/python bench/pipeline_speed.py [--repeat 5] [--sizes 10000 100000 1000000]

Needs the Docker engine and the sandbox image (`jupyter-analyst build-image`). Three parts:

1. A warm follow-up (offline "distribution of a" on a frame of two floats, an int, an
   8-level string and timestamps), through ``agent.analyze`` on the Docker backend, against
   the same code run in this process (compute plus the same PNG encoding): the lower bound.
2. The first analysis after ``%load_ext jupyter_analyst`` with and without pre-start, asked
   at once or a few seconds later, with a stand-in Claude (the real anthropic SDK over HTTP
   to a loopback Messages server) that takes 2 s to write the code; the added wait is the
   first analysis minus a warm one asked the same way.
3. A batch of 8 questions (the stand-in answers each in 1 s, the code takes 1 s: it sleeps,
   so the figure is the pool's and not this 2-core machine's) at max_concurrent 1, 2 and 4,
   on a warm pool (the first batch at each size starts its sandboxes and is shown apart).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from llm_server import MessagesServer, analysis, insights  # noqa: E402

from jupyter_analyst import PythonAnalysisAgent  # noqa: E402
from jupyter_analyst.generation.offline import OfflineGenerator  # noqa: E402

QUESTION = "distribution of a"
PAUSE = 10.0  # seconds between %load_ext and the first question (the user writing it)
BATCH_CODE = ("import time\nfrom jupyter_analyst.runtime import save_metrics\n"
              "time.sleep(1)\nsave_metrics({{'question': {i}, 'rows': len(df)}})")


def make_frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    return pd.DataFrame({
        "a": rng.normal(100, 15, rows),
        "b": rng.exponential(3, rows),
        "n": rng.integers(0, 1000, rows),
        "level": rng.choice([f"level{i}" for i in range(8)], rows),
        "when": pd.date_range("2020-01-01", periods=rows, freq="min"),
    })


class StandInClaude(MessagesServer):
    """Answers every code request with ``code_for(body)`` after ``delay`` s, and every
    insights request at once: concurrent analyses cannot take each other's replies."""

    def __init__(self, code_for, delay: float):
        super().__init__()
        self.code_for, self.delay = code_for, delay

    def _next(self, body, headers):
        refused = self.invalid(body, headers)
        if refused:
            return refused
        tools = {tool.get("name") for tool in body.get("tools", [])}
        if "submit_analysis" in tools:
            reply = replace(analysis(self.code_for(body)), delay=self.delay)
        else:
            reply = insights("The code ran.")
        return replace(reply, body={**reply.body, "model": body["model"]})


def in_process(code: str, frame: pd.DataFrame) -> float:
    """The lower bound: the code and the PNG encoding of its figures (as the sandbox does)."""
    import matplotlib.pyplot as plt

    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, "<analysis>", "exec"), {"df": frame, "__name__": "analysis"})
    for number in plt.get_fignums():
        buffer = io.BytesIO()
        plt.figure(number).savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        base64.b64encode(buffer.getvalue())
    plt.close("all")
    return time.perf_counter() - started


def warm_follow_ups(sizes: list[int], repeat: int) -> None:
    print("1. Warm follow-up, Docker backend, offline 'distribution of a' "
          f"(median of {repeat}, interleaved)")
    print(f"{'rows':>10}{'in-process s':>14}{'pipeline s':>12}{'ratio':>8}{'first s':>10}")
    with PythonAnalysisAgent(backend="docker", model="offline") as agent:
        for rows in sizes:
            frame = make_frame(rows)
            code = offline_code(frame)
            started = time.perf_counter()
            first = agent.analyze_sync(QUESTION, frame)  # describes, hands over, loads
            first_time = time.perf_counter() - started
            assert first.success and first.code == code, first.error
            pipeline, lower = [], []
            for _ in range(repeat):
                lower.append(in_process(code, frame))
                started = time.perf_counter()
                result = agent.analyze_sync(QUESTION, frame)
                pipeline.append(time.perf_counter() - started)
                assert result.success, result.error
            low, full = statistics.median(lower), statistics.median(pipeline)
            print(f"{rows:>10}{low:>14.3f}{full:>12.3f}{full / low:>7.2f}x{first_time:>10.3f}")


def first_analysis(server: StandInClaude, frame: pd.DataFrame, repeat: int) -> None:
    from IPython.testing import globalipapp

    print(f"\n2. First analysis after %load_ext, stand-in Claude writing code in "
          f"{server.delay:g} s (median of {repeat}; the SDK imported beforehand)")
    import anthropic  # its first import costs seconds here, sandbox or not

    anthropic.AsyncAnthropic()
    shell = globalipapp.start_ipython() or globalipapp.get_ipython()
    shell.user_ns["df"] = frame
    variants = {"pre-start on, asked at once": (True, 0.0),
                f"pre-start on, asked {PAUSE:g} s later": (True, PAUSE),
                "pre-start off, asked at once": (False, 0.0)}
    times: dict[str, list[float]] = {name: [] for name in [*variants, "warm"]}
    for _ in range(repeat):
        for name, (prestart, pause) in variants.items():
            shell.config.Analyze.prestart = prestart
            shell.config.Analyze.backend = "docker"
            shell.config.Analyze.use_cache = False
            shell.config.Analyze.auto_approve = True
            shell.run_line_magic("load_ext", "jupyter_analyst")
            time.sleep(pause)  # the user writing the first question
            for key in (name, "warm"):
                started = time.perf_counter()
                with contextlib.redirect_stdout(io.StringIO()):
                    shell.run_cell_magic("analyze", "df --out _r", QUESTION)
                times[key].append(time.perf_counter() - started)
                assert shell.user_ns["_r"].success, shell.user_ns["_r"].error
            shell.run_line_magic("unload_ext", "jupyter_analyst")  # stops the sandbox
    warm = statistics.median(times["warm"])
    print(f"{'':34}{'first s':>9}{'added wait s':>14}")
    for name in variants:
        first = statistics.median(times[name])
        print(f"{name:34}{first:>9.3f}{first - warm:>14.3f}")
    print(f"{'a warm analysis, asked the same way':34}{warm:>9.3f}")


def batches(server: StandInClaude, frame: pd.DataFrame) -> None:
    print(f"\n3. Batch of 8: stand-in Claude answering in {server.delay:g} s, code taking 1 s "
          "(Docker backend)")
    queries = [f"question {i}" for i in range(8)]
    print(f"{'max_concurrent':>15}{'cold s':>9}{'warm s':>9}{'speed-up':>10}")
    sequential = None
    with PythonAnalysisAgent(backend="docker", use_cache=False) as agent:
        for concurrent in (1, 2, 4):
            runs = []
            for _ in range(2):  # the first starts the pool's new sandboxes
                started = time.perf_counter()
                results = asyncio.run(agent.batch_analyze(queries, frame,
                                                          max_concurrent=concurrent))
                runs.append(time.perf_counter() - started)
                assert [r.metrics.get("question") for r in results] == list(range(8)), \
                    [r.error for r in results]
            sequential = sequential or runs[1]
            print(f"{concurrent:>15}{runs[0]:>9.2f}{runs[1]:>9.2f}{sequential / runs[1]:>9.2f}x")


def question_number(body) -> int:
    return int(re.search(r"question (\d+)", str(body["messages"])).group(1))


def offline_code(frame: pd.DataFrame) -> str:
    with PythonAnalysisAgent(model="offline") as agent:
        return asyncio.run(OfflineGenerator().generate(agent.request_for(QUESTION, frame))).code


def main(sizes: list[int], repeat: int) -> None:
    matplotlib.use("Agg")
    os.environ.pop("ANTHROPIC_API_KEY", None)
    warm_follow_ups(sizes, repeat)
    frame = make_frame(10_000)
    code = offline_code(frame)
    with tempfile.TemporaryDirectory() as cache:
        for key, value in (("ANTHROPIC_API_KEY", "sk-ant-bench"), ("NO_PROXY", "127.0.0.1"),
                           ("JUPYTER_ANALYST_CACHE_DIR", cache)):
            os.environ[key] = value
        server = StandInClaude(lambda body: code, delay=2.0).start()
        os.environ["ANTHROPIC_BASE_URL"] = server.url
        first_analysis(server, frame, max(1, repeat // 2))
        server.stop()
        server = StandInClaude(lambda body: BATCH_CODE.format(i=question_number(body)),
                               delay=1.0).start()
        os.environ["ANTHROPIC_BASE_URL"] = server.url
        batches(server, frame)
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    main(args.sizes, args.repeat)
