"""What bubblewrap costs the local backend: cold start and warm analyses, confined
against unconfined (rlimits only), interleaved in one run.

    .venv/bin/python bench/local_confinement.py [--rows 200000] [--repeat 5] [--rounds 3]

Cold: from nothing to the first result (bwrap or plain process, kernel ready,
helpers loaded, frame handed over, analysis run). Warm: each follow-up analysis on
the kept kernel. The same analysis as bench/sandbox_startup.py.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

from sandbox_startup import cold_and_warm
from warm_kernel import make_frame

from jupyter_analyst.sandbox import SandboxLimits, local_sandbox


async def main(rows: int, repeat: int, rounds: int) -> None:
    frame = make_frame(rows)
    limits = SandboxLimits(timeout=120)
    results: dict[bool, tuple[list[float], list[float]]] = {True: ([], []), False: ([], [])}
    for _ in range(rounds):
        for confined in (True, False):
            cold, warm = await cold_and_warm(local_sandbox(limits, confined), frame, repeat)
            results[confined][0].append(cold)
            results[confined][1].extend(warm)
    median = statistics.median
    for confined, (cold, warm) in results.items():
        name = "bubblewrap" if confined else "unconfined"
        print(f"{name:10}  cold {median(cold):.2f} s   warm {median(warm):.3f} s")
    ratio = [median(results[True][i]) / median(results[False][i]) for i in (0, 1)]
    print(f"ratio bubblewrap / unconfined: cold {ratio[0]:.2f}x, warm {ratio[1]:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.repeat, args.rounds))
