"""Gather cleaned outputs and the outputs directory into the parts of a result.

One analysis brings back at most ``MAX_ANALYSIS_BYTES`` of display outputs and
files together, and ``MAX_STREAM_TEXT`` characters of printed output: whatever
does not fit is left out and said so in ``Collected.notices``, as is every file
that was not read and every output part that was refused.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import safefs
from ..runtime import FIGURE_METADATA_KEY, METRICS_MIME
from ..untrusted import (
    IMAGE_EXTENSIONS,
    MAX_ANALYSIS_BYTES,
    MAX_FILE_BYTES,
    MAX_FILES,
    MAX_LISTED,
    MAX_STREAM_TEXT,
    MAX_TEXT,
    SAFE_NAME,
    TEXT_EXTENSIONS,
    InvalidJSON,
    output_name_allowed,
)
from .outputs import cap_text, checked_metrics, clean_output, image_ok

METRICS_FILE = "metrics.json"  # the seed's convention, still honoured
MAX_NOTED_FILES = 10  # skipped files named one by one; the rest are counted


@dataclass
class Collected:
    visualizations: list[dict[str, str]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    tables: list[dict[str, str]] = field(default_factory=list)
    data_outputs: list[dict[str, str]] = field(default_factory=list)
    stdout: str = ""
    skipped_files: list[str] = field(default_factory=list)  # "name: why it was not taken"
    # For the user: what was left out or cut, and why (not findings: see insights).
    notices: list[str] = field(default_factory=list)
    isolation: str = ""  # what the sandbox recorded about its isolation (untrusted text)


class Intake:
    """One analysis's outputs as they arrive: each checked, all together within the quota.

    ``clean`` takes a raw kernel output and returns what may be shown now (or None);
    ``collect`` then adds the files in the outputs directory under the same quota.
    """

    def __init__(self) -> None:
        self.outputs: list[dict[str, Any]] = []
        self.used = 0  # bytes of kept display outputs and files
        self.printed = 0  # characters of printed output passed on
        self.refused: Counter[str] = Counter()  # reason -> times
        self.over_quota = [0, 0]  # display outputs left out for the quota, and their bytes
        self.printed_cut = 0  # characters of printed output left out

    def clean(self, output: dict[str, Any]) -> dict[str, Any] | None:
        notes: list[str] = []
        cleaned = clean_output(output, notes)
        self.refused.update(notes)
        return self.keep(cleaned) if cleaned is not None else None

    def keep(self, output: dict[str, Any]) -> dict[str, Any] | None:
        """``output`` (already cleaned) if it fits in what is left of the quota, else None."""
        if output["output_type"] == "stream":
            room = MAX_STREAM_TEXT - self.printed
            text = output["text"]
            if len(text) > room:
                self.printed_cut += len(text) - max(room, 0)
                if room <= 0:
                    return None
                output = {**output, "text": text[:room]}
            self.printed += len(output["text"])
        elif not self._fits(size := _size(output)):
            self.over_quota[0] += 1
            self.over_quota[1] += size
            return None
        self.outputs.append(output)
        return output

    def _fits(self, size: int) -> bool:
        """Whether ``size`` more bytes fit in the quota; if so, they are counted as used."""
        if self.used + size > MAX_ANALYSIS_BYTES:
            return False
        self.used += size
        return True

    def collect(self, output_dir: Path | None) -> Collected:
        """The parts of the result: kept outputs, then the files in ``output_dir``."""
        result = Collected()
        text = []
        for output in self.outputs:
            if output["output_type"] == "stream":
                text.append(output["text"])
            elif output["output_type"] == "display_data":
                _take_display(output, result)
        result.stdout = cap_text("".join(text), MAX_TEXT)
        if output_dir is not None:
            self._take_files(output_dir, result, result.skipped_files)
        result.notices = self._notices(result.skipped_files)
        return result

    def _take_files(self, output_dir: Path, result: Collected, skipped: list[str]) -> None:
        try:
            with safefs.open_dir(output_dir) as dir_fd:
                names, more = safefs.list_names(dir_fd, MAX_LISTED)
                if more:
                    skipped.append(f"only the first {MAX_LISTED:,} entries were looked at")
                taken = 0
                for name in names:
                    if taken >= MAX_FILES:
                        skipped.append(f"{_shown(name)}: more than {MAX_FILES} output files")
                    elif reason := self._take_file(dir_fd, name, result):
                        skipped.append(f"{_shown(name)}: {reason}")
                    elif name != METRICS_FILE:
                        taken += 1
        except OSError as exc:  # the directory itself was replaced (by a link, say)
            skipped.append(f"the outputs directory could not be read ({exc.strerror or exc})")

    def _take_file(self, dir_fd: int, name: str, result: Collected) -> str | None:
        """Read and take one file; the reason it was not taken, or None."""
        suffix = Path(name).suffix.lower()
        if not output_name_allowed(name):
            return "name or type not allowed"
        try:
            raw = safefs.read_file(dir_fd, name, MAX_FILE_BYTES)
        except safefs.Refused as exc:
            return str(exc)
        if suffix in IMAGE_EXTENSIONS:
            if not image_ok(raw, IMAGE_EXTENSIONS[suffix]):
                return "not a valid image"
            data = base64.b64encode(raw).decode("ascii")
            if not self._fits(len(data)):
                return "over the total size of one analysis's outputs"
            result.visualizations.append({"title": cap_text(Path(name).stem),
                                          "format": "png" if suffix == ".png" else "jpeg",
                                          "data": data})
            return None
        text = raw.decode("utf-8", errors="replace")
        if name == METRICS_FILE:
            try:
                metrics = checked_metrics(text)
            except InvalidJSON as exc:
                return f"metrics not used: {exc}"
            for key, value in metrics.items():
                result.metrics.setdefault(key, value)
            return None
        if not self._fits(len(raw)):
            return "over the total size of one analysis's outputs"
        result.data_outputs.append({"name": name, "format": TEXT_EXTENSIONS[suffix],
                                    "data": text})
        return None

    def _notices(self, skipped: list[str]) -> list[str]:
        notices = [f"Left out: {reason}" + (f" ({count}×)" if count > 1 else "")
                   for reason, count in self.refused.items()]
        if self.over_quota[0]:
            count, size = self.over_quota
            notices.append(f"Left out: {count} output(s) of {size / 2**20:,.1f} MB in all, over "
                           f"the {MAX_ANALYSIS_BYTES // 2**20} MB one analysis may bring back.")
        if self.printed_cut:
            notices.append(f"Printed output cut: {self.printed_cut:,} characters beyond the "
                           f"{MAX_STREAM_TEXT:,} one analysis may print.")
        if skipped:
            shown = skipped[:MAX_NOTED_FILES]
            more = len(skipped) - len(shown)
            notices.append("Output files not taken: " + "; ".join(shown)
                           + (f"; and {more} more" if more else "") + ".")
        return notices


def collect(outputs: list[dict[str, Any]], output_dir: Path | None) -> Collected:
    """Parts of a result from already-cleaned outputs and the files left in ``output_dir``."""
    intake = Intake()
    for output in outputs:
        intake.keep(output)
    return intake.collect(output_dir)


def _take_display(output: dict[str, Any], result: Collected) -> None:
    data = output["data"]
    if METRICS_MIME in data:
        result.metrics.update(data[METRICS_MIME])
    elif "image/png" in data or "image/jpeg" in data:
        title = output["metadata"].get(FIGURE_METADATA_KEY, {}).get("title")
        kind = "png" if "image/png" in data else "jpeg"
        result.visualizations.append({"title": title or f"Figure {len(result.visualizations) + 1}",
                                      "format": kind, "data": data[f"image/{kind}"]})
    elif "text/html" in data:
        # The text form (pandas' repr, already cleaned of escapes) is what a terminal shows.
        result.tables.append({"format": "html", "data": data["text/html"],
                              "text": data.get("text/plain", "<table>")})


def _size(output: dict[str, Any]) -> int:
    """What a cleaned display output weighs: the length of its JSON (base64 images included)."""
    return len(json.dumps(output.get("data", {})))


def _shown(name: str) -> str:
    """A file name as shown in a notice: capped, escapes removed, repr-quoted when odd."""
    return name if SAFE_NAME.match(name) else repr(cap_text(name, 100))
