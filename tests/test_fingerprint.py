"""The frame fingerprint: the key of the description cache and of the sandbox's data files.

Every edit must change it (in place or not, numbers, text, categories, time zones, labels),
equal content must give the same one (in this process and another), and it is taken from
the frame's own buffers, without converting the frame.
"""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from jupyter_analyst.fingerprint import frame_fingerprint


def make_frame(rows: int = 1000) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame({
        "a": rng.normal(size=rows),
        "b": rng.normal(size=rows),
        "n": rng.integers(0, 100, rows),
        "level": rng.choice([f"level{i}" for i in range(8)], rows),
        "when": pd.date_range("2024-01-01", periods=rows, freq="min"),
    })


def edit_iloc(df):
    df.iloc[5, 0] = 99.0


def edit_add(df):
    df["n"] += 1


def edit_text(df):
    df.loc[7, "level"] = "level9"


def edit_text_same_length(df):  # same length, same buffers' sizes: only the bytes differ
    df.loc[7, "level"] = "levelX" if df.loc[7, "level"] != "levelX" else "levelY"


def edit_time(df):
    df.loc[3, "when"] = pd.Timestamp("1999-01-01")


def edit_missing(df):
    df.loc[2, "a"] = np.nan


def edit_rename(df):
    df.columns = ["a", "c", "n", "level", "when"]


def edit_index(df):
    df.index = df.index + 1


def edit_dtype(df):
    df["n"] = df["n"].astype("int32")


def edit_swap_rows(df):  # the same values in another order
    df.iloc[[0, 1]] = df.iloc[[1, 0]].to_numpy()


@pytest.mark.parametrize("edit", [edit_iloc, edit_add, edit_text, edit_text_same_length,
                                  edit_time, edit_missing, edit_rename, edit_index, edit_dtype,
                                  edit_swap_rows])
def test_every_in_place_edit_changes_it(edit):
    df = make_frame()
    before = frame_fingerprint(df)
    assert frame_fingerprint(df) == before  # asking twice changes nothing
    edit(df)
    assert frame_fingerprint(df) != before


@pytest.mark.parametrize("kind", ["object", "str", "category", "string[python]"])
def test_text_columns_are_hashed_by_value(kind):
    df = make_frame().astype({"level": kind})
    before = frame_fingerprint(df)
    # An equal copy, made of other objects, has the same fingerprint: values, not addresses.
    rebuilt = df.copy()
    rebuilt["level"] = pd.Series([str(v)[:] + "" for v in df["level"]], dtype=kind)
    assert frame_fingerprint(rebuilt) == before
    df.loc[4, "level"] = "level1" if df.loc[4, "level"] != "level1" else "level2"
    assert frame_fingerprint(df) != before


def test_mutable_values_in_object_columns_are_hashed_by_value():
    df = pd.DataFrame({"items": [[1, 2], {"k": 1}, "text", 3]})
    before = frame_fingerprint(df)
    df.loc[0, "items"].append(3)  # the list changes, the column holds the same object
    assert frame_fingerprint(df) != before


def test_types_of_mixed_values_count():
    assert (frame_fingerprint(pd.DataFrame({"v": [1, "a"]}))
            != frame_fingerprint(pd.DataFrame({"v": ["1", "a"]})))


def test_nullable_categorical_and_time_zone_columns():
    df = pd.DataFrame({"i": pd.array([1, None, 3], dtype="Int64"),
                       "k": pd.Categorical(["a", "b", "a"]),
                       "t": pd.date_range("2024-01-01", periods=3, tz="Europe/Paris")})
    before = frame_fingerprint(df)
    for column, value in (("i", 5), ("k", "a"), ("t", pd.Timestamp("2020-01-01", tz="UTC"))):
        changed = df.copy()
        changed.loc[1, column] = value
        assert frame_fingerprint(changed) != before, column
    assert frame_fingerprint(df.assign(t=df["t"].dt.tz_convert("UTC"))) != before
    assert frame_fingerprint(df.set_index(["k", "i"])) != frame_fingerprint(df.set_index("k"))


def test_equal_content_same_fingerprint_in_another_process():
    code = ("import numpy as np, pandas as pd, sys; sys.path.insert(0, 'tests');"
            "from test_fingerprint import make_frame;"
            "from jupyter_analyst.fingerprint import frame_fingerprint;"
            "print(frame_fingerprint(make_frame().astype({'level': object})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == frame_fingerprint(make_frame().astype({"level": object}))
    assert frame_fingerprint(make_frame().copy()) == frame_fingerprint(make_frame())
