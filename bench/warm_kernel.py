"""Warm kernel + data moved once, against a fresh kernel + a pickle per analysis.

Both sides run the same analysis code on the same frame, side by side in one
run, so the ratio holds on a noisy machine even when absolute times do not.

    .venv/bin/python bench/warm_kernel.py [--rows 200000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from jupyter_client.manager import AsyncKernelManager

from jupyter_analyst.sandbox import SandboxLimits, local_sandbox

ANALYSIS = """\
import matplotlib.pyplot as plt
from jupyter_analyst.runtime import save_metrics
save_metrics({"mean": float(df["value"].mean()), "p95": float(df["value"].quantile(0.95))})
df["value"].plot.hist(bins=40)
plt.title("value")
"""


def make_frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame({
        "when": pd.date_range("2020-01-01", periods=rows, freq="min"),
        "group": rng.choice(["a", "b", "c", "d"], rows),
        "value": rng.normal(100, 15, rows),
    })


async def fresh_kernel_with_pickle(frame: pd.DataFrame) -> float:
    """The seed's design: a new kernel per analysis, the frame pickled across."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frame.pkl"
        frame.to_pickle(path)
        manager = AsyncKernelManager(kernel_name="python3")
        await manager.start_kernel(cwd=tmp, env={"MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin"})
        client = manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=60)
            code = f"import pandas as pd\ndf = pd.read_pickle({str(path)!r})\n" + ANALYSIS
            reply = await client.execute_interactive(code, timeout=120, output_hook=lambda m: None)
            assert reply["content"]["status"] == "ok", reply["content"]
        finally:
            client.stop_channels()
            await manager.shutdown_kernel(now=True)
    return time.perf_counter() - started


async def warm_sandbox_analysis(sandbox, frame: pd.DataFrame) -> float:
    started = time.perf_counter()
    await sandbox.bind_frames({"df": frame})
    sandbox.clear_outputs()
    execution = await sandbox.execute(ANALYSIS)
    assert execution.status == "ok", execution.error
    return time.perf_counter() - started


async def main(rows: int, repeat: int) -> None:
    frame = make_frame(rows)
    sandbox = local_sandbox(SandboxLimits(timeout=120))
    cold_started = time.perf_counter()
    await sandbox.start()
    first = await warm_sandbox_analysis(sandbox, frame)
    cold = time.perf_counter() - cold_started
    warm, fresh = [], []
    for _ in range(repeat):  # interleaved, so both sides see the same machine load
        fresh.append(await fresh_kernel_with_pickle(frame))
        warm.append(await warm_sandbox_analysis(sandbox, frame))
    written = sandbox.frames_written
    await sandbox.shutdown()
    warm_median, fresh_median = statistics.median(warm), statistics.median(fresh)
    print(f"frame: {rows} rows x {frame.shape[1]} columns; {repeat} analyses per side, interleaved")
    print(f"{'':38}{'median s':>10}")
    print(f"{'fresh kernel + pickle per analysis':38}{fresh_median:>10.3f}")
    print(f"{'warm sandbox kernel, data moved once':38}{warm_median:>10.3f}")
    print(f"{'first analysis incl. kernel start':38}{cold:>10.3f}"
          f"  (its analysis part: {first:.3f})")
    print(f"speed-up of a follow-up analysis: {fresh_median / warm_median:.1f}x "
          f"(Parquet files written for {repeat + 1} analyses: {written})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.repeat))
