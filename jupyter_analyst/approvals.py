"""Approvals that outlive the kernel: "this code, for this question, on this data, was run".

Re-running a cell whose exact code was approved before, for the same question and the
same data, runs without asking again, so Restart & Run All reproduces a notebook.
Anything changed (question, data, the generator's answer, an edit) asks again.

The approvals are kept in ``.jupyter-analyst/approvals.json`` in the kernel's working
directory, which is the notebook's folder in JupyterLab and Notebook: they survive a
kernel restart and travel with the notebook's folder (commit or copy it along). Only
digests are stored, never code or data. Revoke them with ``%analyze revoke`` or by
deleting the file; ``%config Analyze.remember_approvals = False`` turns this off.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from .sandbox.datastore import arrow_table, fingerprint

DIRECTORY = ".jupyter-analyst"
FILENAME = "approvals.json"
MAX_ENTRIES = 2000  # oldest dropped first: the file stays small


def data_digest(frames: dict[str, pd.DataFrame]) -> str:
    """The frames' names and contents as one digest (the sandbox's fingerprint per frame)."""
    digest = hashlib.sha256()
    for name in sorted(frames):
        table, _ = arrow_table(frames[name], name)
        digest.update(f"{name}={fingerprint(table)};".encode())
    return digest.hexdigest()


def approval_key(question: str, data: str, code: str) -> str:
    parts = json.dumps([question.strip(), data, code], ensure_ascii=True)
    return hashlib.sha256(parts.encode()).hexdigest()


def code_digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


class ApprovalStore:
    """Approval keys in a small JSON file; unreadable or foreign content counts as empty."""

    def __init__(self, folder: str | os.PathLike | None = None):
        self.path = Path(folder or Path.cwd()) / DIRECTORY / FILENAME

    def _load(self) -> dict[str, float]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        entries = data.get("approved") if isinstance(data, dict) else None
        if not isinstance(entries, dict):
            return {}
        return {k: v for k, v in entries.items()
                if isinstance(k, str) and isinstance(v, (int, float))}

    def is_approved(self, key: str) -> bool:
        return key in self._load()

    def approve(self, key: str) -> None:
        entries = self._load()
        entries[key] = time.time()
        newest = dict(sorted(entries.items(), key=lambda item: item[1])[-MAX_ENTRIES:])
        self._save(newest)

    def revoke(self, key: str | None = None) -> int:
        """Forget one approval, or all (``key=None``); returns how many were forgotten."""
        entries = self._load()
        if key is None:
            forgotten = len(entries)
            entries = {}
        else:
            forgotten = int(entries.pop(key, None) is not None)
        self._save(entries)
        return forgotten

    def __len__(self) -> int:
        return len(self._load())

    def _save(self, entries: dict[str, float]) -> None:
        self.path.parent.mkdir(exist_ok=True)
        text = json.dumps({"about": "jupyter-analyst approvals: digests of (question, data, "
                                    "code) that were run; delete to revoke",
                           "approved": entries}, indent=1)
        # Written whole, then renamed: a notebook saved mid-write never sees half a file.
        handle, partial = tempfile.mkstemp(dir=self.path.parent, prefix=".approvals-")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(partial, self.path)
