"""Hand frames to the kernel once: Parquet files named by a content fingerprint.

The same frame analysed twice has the same fingerprint, so the second analysis
finds its file already written (and already loaded in the kernel) and moves no
data. Never pickle: Parquet keeps the host from trusting anything executable.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError


def arrow_table(frame: pd.DataFrame, name: str) -> tuple[pa.Table, list[str]]:
    """The frame as an Arrow table; mixed-type object columns become text, with a warning."""
    if frame.columns.has_duplicates:
        dupes = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise InputError(
            f"'{name}' has duplicate column names: {', '.join(dupes)}.",
            f"Rename them first, e.g. {name}.columns = [...], then run the analysis again.",
        )
    warnings = []
    try:
        return pa.Table.from_pandas(frame, preserve_index=True), warnings
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass
    frame = frame.copy()
    for column in frame.columns:
        try:
            pa.array(frame[column], from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            frame[column] = frame[column].map(lambda v: None if v is None else str(v))
            warnings.append(
                f"Column {column!r} of '{name}' mixes types; it was sent to the sandbox as text."
            )
    return pa.Table.from_pandas(frame, preserve_index=True), warnings


def fingerprint(table: pa.Table) -> str:
    """A content hash of the table's schema and data, stable across processes."""
    digest = hashlib.sha256(table.schema.to_string(show_schema_metadata=True).encode())
    for column in table.columns:
        for chunk in column.chunks:
            for buffer in chunk.buffers():
                if buffer is not None:
                    digest.update(buffer)
    return digest.hexdigest()[:24]


def write_frame(frame: pd.DataFrame, name: str, data_dir: Path) -> tuple[str, list[str], bool]:
    """Write ``frame`` into ``data_dir`` unless already there.

    Returns the file name, warnings for the user, and whether a file was written.
    """
    table, warnings = arrow_table(frame, name)
    filename = f"{fingerprint(table)}.parquet"
    target = data_dir / filename
    if target.exists():
        return filename, warnings, False
    partial = target.with_suffix(".partial")
    pq.write_table(table, partial)
    partial.chmod(0o644)
    partial.rename(target)
    return filename, warnings, True
