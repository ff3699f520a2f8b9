"""Gather cleaned outputs and the outputs directory into the parts of a result."""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..runtime import FIGURE_METADATA_KEY, METRICS_MIME
from .outputs import MAX_TEXT, cap_text, checked_metrics, image_ok

MAX_FILES = 20
MAX_LISTED = 1000  # entries looked at in the outputs directory, however many there are
MAX_FILE_BYTES = 5 * 1024 * 1024
TEXT_EXTENSIONS = {".csv": "csv", ".json": "json", ".txt": "txt", ".md": "txt"}
IMAGE_EXTENSIONS = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
METRICS_FILE = "metrics.json"  # the seed's convention, still honoured


@dataclass
class Collected:
    visualizations: list[dict[str, str]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    tables: list[dict[str, str]] = field(default_factory=list)
    data_outputs: list[dict[str, str]] = field(default_factory=list)
    stdout: str = ""
    skipped_files: list[str] = field(default_factory=list)  # why files were not taken


def collect(outputs: list[dict[str, Any]], output_dir: Path | None) -> Collected:
    """Parts of a result from already-cleaned outputs and the files left in ``output_dir``."""
    result = Collected()
    text = []
    for output in outputs:
        if output["output_type"] == "stream":
            text.append(output["text"])
        elif output["output_type"] == "display_data":
            _take_display(output, result)
    result.stdout = cap_text("".join(text), MAX_TEXT)
    if output_dir is not None:
        _take_files(output_dir, result)
    return result


def _take_display(output: dict[str, Any], result: Collected) -> None:
    data = output["data"]
    if METRICS_MIME in data:
        result.metrics.update(data[METRICS_MIME])
    elif "image/png" in data:
        title = output["metadata"].get(FIGURE_METADATA_KEY, {}).get("title")
        result.visualizations.append({"title": title or f"Figure {len(result.visualizations) + 1}",
                                      "format": "png", "data": data["image/png"]})
    elif "text/html" in data:
        result.tables.append({"format": "html", "data": data["text/html"]})


def _take_files(output_dir: Path, result: Collected) -> None:
    taken = 0
    with os.scandir(output_dir) as entries:
        names = sorted(entry.name for entry in itertools.islice(entries, MAX_LISTED))
    for name in names:
        if taken >= MAX_FILES:
            result.skipped_files.append(f"{name}: more than {MAX_FILES} output files")
            continue
        suffix = Path(name).suffix.lower()
        if not SAFE_NAME.match(name) or suffix not in {**TEXT_EXTENSIONS, **IMAGE_EXTENSIONS}:
            result.skipped_files.append(f"{name}: name or type not allowed")
            continue
        raw = read_regular_file(output_dir / name, MAX_FILE_BYTES)
        if raw is None:
            result.skipped_files.append(f"{name}: not a regular file, or too large")
            continue
        if suffix in IMAGE_EXTENSIONS:
            if image_ok(raw, IMAGE_EXTENSIONS[suffix]):
                taken += 1
                result.visualizations.append({"title": Path(name).stem,
                                              "format": "png" if suffix == ".png" else "jpeg",
                                              "data": base64.b64encode(raw).decode("ascii")})
            else:
                result.skipped_files.append(f"{name}: not a valid image")
            continue
        text = raw.decode("utf-8", errors="replace")
        if name == METRICS_FILE:
            try:
                metrics = checked_metrics(json.loads(text))
            except ValueError:
                metrics = None
            if metrics is not None:
                for key, value in metrics.items():
                    result.metrics.setdefault(key, value)
                continue
        taken += 1
        result.data_outputs.append({"name": name, "format": TEXT_EXTENSIONS[suffix], "data": text})


def read_regular_file(path: Path, limit: int) -> bytes | None:
    """The bytes of ``path`` if it is a regular file no larger than ``limit``.

    Opened with O_NOFOLLOW (a symlink fails) and O_NONBLOCK (a FIFO cannot block
    us), then checked with fstat on the open descriptor, so a swap between the
    check and the read cannot redirect it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
        return data if len(data) <= limit else None
    finally:
        os.close(fd)
