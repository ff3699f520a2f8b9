"""On-disk cache of generated code, so asking the same thing again costs nothing.

The key covers everything the answer depends on: the question, the data context
fingerprint (which changes with the data and the privacy mode), the model, the
analysis type, the failed attempts of a repair, the conversation, the notebook cells
sent along, and the prompt version. Entries are small JSON files written atomically and
readable by the owner only. A cached answer comes back with ``cached=True`` and zero
usage, because nothing was spent.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import platformdirs

from .base import GeneratedCode, GenerationRequest

CACHE_DIR_ENV = "JUPYTER_ANALYST_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$JUPYTER_ANALYST_CACHE_DIR`` or the user's cache dir (``~/.cache/jupyter-analyst``)."""
    return Path(os.environ.get(CACHE_DIR_ENV) or platformdirs.user_cache_dir("jupyter-analyst"))


def cache_key(request: GenerationRequest, model: str, prompt_version: str) -> str:
    material = {
        "question": request.question,
        "context": request.context.fingerprint,
        "model": model,
        "analysis_type": request.analysis_type,
        "failures": [[f.code, f.error] for f in request.failures],
        # A follow-up never gets the cached answer of another conversation.
        "history": [[e.question, e.code, e.digest] for e in request.history],
        "notebook_cells": request.notebook_cells,
        "prompt_version": prompt_version,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


class ResponseCache:
    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory) if directory else default_cache_dir()

    def get(self, key: str) -> GeneratedCode | None:
        path = self._path(key)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            hit = GeneratedCode(**data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError):
            # A damaged or foreign file is a miss, never an error: the next answer replaces it.
            return None
        if not isinstance(hit.code, str) or not hit.code.strip():
            return None
        hit.cached = True
        hit.usage = {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
        return hit

    def put(self, key: str, answer: GeneratedCode) -> None:
        tmp = None
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({**asdict(answer), "cached": False}, handle)
            os.replace(tmp, self._path(key))
        except OSError:
            # A read-only or full disk only costs the next call a request; not worth failing for.
            if tmp:
                Path(tmp).unlink(missing_ok=True)

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.json"
