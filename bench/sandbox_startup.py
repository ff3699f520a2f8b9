"""Docker sandbox start-up and per-analysis overhead, against the local backend and the
seed's design (a fresh container and a pickle per analysis), side by side in one run.

    .venv/bin/python bench/sandbox_startup.py [--rows 200000] [--repeat 5]
    .venv/bin/python bench/sandbox_startup.py --runtimes runc runsc   # OCI runtimes instead

Needs the Docker engine and the sandbox image (`jupyter-analyst build-image`).
All three run the same analysis (bench/warm_kernel.py's ANALYSIS) on the same frame:

- cold: from nothing to the first result (container or process start, kernel ready,
  helpers loaded, frame handed over, analysis run);
- warm: each follow-up analysis on the kept kernel (the frame is already there);
- seed: every analysis starts a fresh container with the same hardening, unpickles
  the frame, runs, and pickles the results back to the host (which unpickles them).

With ``--runtimes``, the Docker sandbox alone runs under each named OCI runtime of the
engine (SANDBOX_RUNTIME), interleaved, with cold and warm ratios against the first one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import statistics
import tempfile
import time
from pathlib import Path

from warm_kernel import ANALYSIS, make_frame, warm_sandbox_analysis

from jupyter_analyst.sandbox import SandboxLimits, local_sandbox
from jupyter_analyst.sandbox.docker_provisioner import SANDBOX_UID, docker_sandbox
from jupyter_analyst.sandbox.engine import RUNTIME_ENV, docker_client, image_name

# The seed's runner, as a script: the frame comes in as a pickle, results go out as one.
SEED_SCRIPT = """
import pickle, sys, pandas as pd
import jupyter_analyst.runtime as runtime
metrics = {}
runtime.save_metrics = lambda values: metrics.update(values)
df = pd.read_pickle("/work/frame.pkl")
exec(compile(open("/work/analysis.py").read(), "analysis", "exec"), {"df": df})
import matplotlib.pyplot as plt
plt.savefig("/work/plot.png")
pickle.dump({"metrics": metrics}, open("/work/result.pkl", "wb"))
"""


def seed_analysis(client, frame) -> float:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        os.chmod(work, 0o777)
        frame.to_pickle(Path(work) / "frame.pkl")
        (Path(work) / "analysis.py").write_text(ANALYSIS)
        user = f"{SANDBOX_UID}:{SANDBOX_UID}" if os.geteuid() == 0 else f"{os.getuid()}"
        client.containers.run(
            image_name(), ["python", "-c", SEED_SCRIPT], remove=True, user=user,
            network_mode="none", read_only=True, tmpfs={"/tmp": "size=256m"},
            cap_drop=["ALL"], security_opt=["no-new-privileges"], mem_limit="2g",
            volumes={work: {"bind": "/work", "mode": "rw"}})
        with open(Path(work) / "result.pkl", "rb") as handle:
            result = pickle.load(handle)  # what the seed did; the product never unpickles
        assert result["metrics"], result
    return time.perf_counter() - started


async def cold_and_warm(sandbox, frame, repeat: int) -> tuple[float, list[float]]:
    started = time.perf_counter()
    await sandbox.start()
    await warm_sandbox_analysis(sandbox, frame)
    cold = time.perf_counter() - started
    warm = [await warm_sandbox_analysis(sandbox, frame) for _ in range(repeat)]
    await sandbox.shutdown()
    return cold, warm


async def main(rows: int, repeat: int) -> None:
    frame = make_frame(rows)
    client = docker_client()
    limits = SandboxLimits(timeout=120)
    # Interleaved rounds, so every side sees the same machine load.
    docker_cold, local_cold, docker_warm, local_warm, seed = [], [], [], [], []
    for _ in range(2):
        cold, warm = await cold_and_warm(docker_sandbox(limits), frame, repeat)
        docker_cold.append(cold)
        docker_warm += warm
        cold, warm = await cold_and_warm(local_sandbox(limits), frame, repeat)
        local_cold.append(cold)
        local_warm += warm
        seed += [await asyncio.to_thread(seed_analysis, client, frame) for _ in range(repeat)]
    median = statistics.median
    rows_out = [
        ("docker: cold start to first result", median(docker_cold)),
        ("local:  cold start to first result", median(local_cold)),
        ("docker: warm analysis", median(docker_warm)),
        ("local:  warm analysis", median(local_warm)),
        ("seed: fresh container + pickle, each", median(seed)),
    ]
    print(f"frame: {rows} rows x {frame.shape[1]} columns; image {image_name()}; "
          f"2 cold starts and {2 * repeat} warm analyses per backend, interleaved")
    for label, seconds in rows_out:
        print(f"{label:40}{seconds:>8.3f} s")
    print(f"docker cold / local cold:            {median(docker_cold) / median(local_cold):6.2f}x")
    print(f"docker warm / local warm:            {median(docker_warm) / median(local_warm):6.2f}x")
    print(f"seed per analysis / docker warm:     {median(seed) / median(docker_warm):6.2f}x")
    print(f"seed per analysis / docker cold:     {median(seed) / median(docker_cold):6.2f}x")


async def compare_runtimes(rows: int, repeat: int, runtimes: list[str]) -> None:
    frame = make_frame(rows)
    limits = SandboxLimits(timeout=120)
    cold = {runtime: [] for runtime in runtimes}
    warm = {runtime: [] for runtime in runtimes}
    for _ in range(3):  # interleaved rounds, so every runtime sees the same machine load
        for runtime in runtimes:
            os.environ[RUNTIME_ENV] = runtime  # read when the container is created
            first, rest = await cold_and_warm(docker_sandbox(limits), frame, repeat)
            cold[runtime].append(first)
            warm[runtime] += rest
    median = statistics.median
    base = runtimes[0]
    print(f"frame: {rows} rows x {frame.shape[1]} columns; image {image_name()}; "
          f"3 cold starts and {3 * repeat} warm analyses per runtime, interleaved")
    for runtime in runtimes:
        print(f"{runtime:12} cold {median(cold[runtime]):7.3f} s "
              f"({median(cold[runtime]) / median(cold[base]):5.2f}x {base})   "
              f"warm {median(warm[runtime]):7.3f} s "
              f"({median(warm[runtime]) / median(warm[base]):5.2f}x {base})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--runtimes", nargs="+", metavar="RUNTIME",
                        help="compare the Docker sandbox under these engine runtimes")
    args = parser.parse_args()
    if args.runtimes:
        asyncio.run(compare_runtimes(args.rows, args.repeat, args.runtimes))
    else:
        asyncio.run(main(args.rows, args.repeat))
