"""Hand frames to the kernel once: Parquet files named by a content fingerprint.

The same frame analysed twice has the same fingerprint (``frame_fingerprint``, taken
from the frame's own buffers), so the second analysis finds its file already written
(and already loaded in the kernel), converts nothing and moves no data. Never pickle:
Parquet keeps the host from trusting anything executable.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pandas.api import types as ptypes

from ..errors import InputError
from ..fingerprint import frame_fingerprint


def arrow_table(frame: pd.DataFrame, name: str) -> tuple[pa.Table, list[str]]:
    """The frame as an Arrow table; mixed-type object columns become text, with a warning."""
    _check_columns(frame, name)
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


def _check_columns(frame: pd.DataFrame, name: str) -> None:
    if frame.columns.has_duplicates:
        dupes = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise InputError(
            f"'{name}' has duplicate column names: {', '.join(dupes)}.",
            f"Rename them first, e.g. {name}.columns = [...], then run the analysis again.",
        )


def fingerprint(table: pa.Table) -> str:
    """A content hash of an Arrow table's schema and data, stable across processes (the
    approvals' digest of the data)."""
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
    Nothing here follows a link: "already there" means a regular file of our own, and a
    new file is created under a fresh name (O_EXCL) and renamed into place, which
    replaces whatever else stood at the name.
    """
    _check_columns(frame, name)
    filename = f"{frame_fingerprint(frame)}.parquet"
    target = data_dir / filename
    # Only object columns can mix types, and their warnings come from converting them.
    if _is_own_file(target) and not any(ptypes.is_object_dtype(t) for t in frame.dtypes):
        return filename, [], False
    table, warnings = arrow_table(frame, name)
    if _is_own_file(target):
        return filename, warnings, False
    handle, partial = tempfile.mkstemp(dir=data_dir, prefix=".partial-", suffix=".parquet")
    try:
        with os.fdopen(handle, "wb") as out:
            pq.write_table(table, out)
        os.chmod(partial, 0o644)
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return filename, warnings, True


def _is_own_file(path: Path) -> bool:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_nlink == 1
