"""The release check's analysis: run from outside the checkout, with the Python of a fresh venv
that has only the built wheel installed (see .ci/run).

One question on bundled data, answered by the offline generator in the Docker sandbox, with the
proposal edited to use scipy and seaborn (default dependencies of the wheel and in the image).
Exits non-zero when anything fails.
"""

import asyncio
import sys
from pathlib import Path

import jupyter_analyst
from jupyter_analyst import PythonAnalysisAgent, datasets

CODE = """\
import matplotlib.pyplot as plt
import seaborn as sns
from scipy import stats
from jupyter_analyst.runtime import save_metrics

fit = stats.pearsonr(df["total_bill"], df["tip"])
ax = sns.regplot(data=df, x="total_bill", y="tip")
ax.set_title("Tip against total bill")
ax.set_xlabel("total bill")
ax.set_ylabel("tip")
save_metrics({"pearson_r": float(fit.statistic), "p_value": float(fit.pvalue)})
"""


async def main() -> None:
    installed = Path(jupyter_analyst.__file__).resolve()
    assert Path(sys.prefix).resolve() in installed.parents, f"not the wheel's copy: {installed}"
    tips = datasets.load("tips")
    async with PythonAnalysisAgent(backend="docker", model="offline") as agent:
        session = agent.session("correlation between tip and total bill", tips)
        await session.prepare()
        result = await session.run(CODE)
    assert result.success, result.error
    assert result.backend == "docker", result.backend
    assert len(result.visualizations) == 1, result.visualizations
    expected = tips["total_bill"].corr(tips["tip"])
    assert abs(result.metrics["pearson_r"] - expected) < 1e-9, result.metrics
    print(f"release check: pearson_r {result.metrics['pearson_r']:.4f} in the Docker sandbox, "
          f"from {installed.parent}")


if __name__ == "__main__":
    asyncio.run(main())
