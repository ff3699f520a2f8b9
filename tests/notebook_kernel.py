"""A plain ipykernel, as in an ordinary notebook, that runs a cell and returns what it showed.

Templates and offline code must run unchanged in a normal notebook where the frame
exists under its name. This starts a real kernel (no sandbox), hands each frame over
as Parquet, clears the namespace before every cell (so a cell cannot lean on names
an earlier cell left behind) and collects the metrics, PNG figures, stdout and error.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from jupyter_client.manager import start_new_kernel

from jupyter_analyst.runtime import FIGURE_METADATA_KEY, METRICS_MIME

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class CellOutput:
    metrics: dict[str, Any] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)  # titles of PNG figures shown
    stdout: str = ""
    error: str | None = None


class NotebookKernel:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.manager, self.client = start_new_kernel(
            kernel_name="python3", cwd=str(workdir), env={**os.environ, "MPLBACKEND": "Agg"})
        # Figures are flushed as PNG after each cell, as in the sandbox kernel.
        self._execute("from jupyter_analyst.runtime import setup_kernel\nsetup_kernel()")

    def run(self, code: str, **frames: pd.DataFrame) -> CellOutput:
        setup = ["%reset -f", "import pandas"]
        for name, frame in frames.items():
            path = self.workdir / f"{name}.parquet"
            frame.to_parquet(path)
            setup.append(f"{name} = pandas.read_parquet({str(path)!r})")
        setup.append("del pandas")
        prepared = self._execute("\n".join(setup))
        assert prepared.error is None, prepared.error
        return self._execute(code)

    def _execute(self, code: str) -> CellOutput:
        out = CellOutput()

        def collect(msg: dict) -> None:
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream" and content["name"] == "stdout":
                out.stdout += content["text"]
            elif kind in ("display_data", "execute_result"):
                data = content["data"]
                if METRICS_MIME in data:
                    out.metrics.update(data[METRICS_MIME])
                if "image/png" in data:
                    assert base64.b64decode(data["image/png"]).startswith(PNG_MAGIC)
                    meta = content.get("metadata", {}).get(FIGURE_METADATA_KEY, {})
                    out.figures.append(meta.get("title", ""))
            elif kind == "error":
                out.error = f"{content['ename']}: {content['evalue']}"

        reply = self.client.execute_interactive(code, output_hook=collect, timeout=120,
                                                allow_stdin=False)
        if reply["content"]["status"] != "ok" and out.error is None:
            out.error = reply["content"].get("ename", "error")
        return out

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)
