"""Frames are handed over as fingerprinted Parquet, once."""

import os

import pandas as pd
import pytest

from jupyter_analyst.errors import InputError
from jupyter_analyst.sandbox.datastore import write_frame


def test_same_content_same_file_written_once(tmp_path, tips):
    first = write_frame(tips, "tips", tmp_path)
    second = write_frame(tips.copy(), "tips", tmp_path)
    assert first[0] == second[0] and first[2] is True and second[2] is False
    assert list(tmp_path.iterdir()) == [tmp_path / first[0]]


def test_changed_content_gets_a_new_file(tmp_path, tips):
    changed = tips.copy()
    changed.loc[0, "tip"] += 1
    assert write_frame(tips, "t", tmp_path)[0] != write_frame(changed, "t", tmp_path)[0]


def test_round_trip_keeps_index_and_dtypes(tmp_path):
    frame = pd.DataFrame({"price": [1.0, 2.5],
                          "when": pd.to_datetime(["2024-01-01", "2024-01-02"])},
                         index=pd.Index(["a", "b"], name="ticker"))
    name, _, _ = write_frame(frame, "f", tmp_path)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / name), frame)


def test_mixed_object_column_becomes_text_with_a_warning(tmp_path):
    frame = pd.DataFrame({"mixed": [1, "two", 3.0, None], "ok": [1, 2, 3, 4]})
    name, warnings, _ = write_frame(frame, "f", tmp_path)
    assert any("mixed" in w for w in warnings)
    assert pd.read_parquet(tmp_path / name)["mixed"].tolist()[:3] == ["1", "two", "3.0"]


def test_duplicate_columns_are_a_clear_error(tmp_path):
    frame = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(InputError, match="duplicate column names"):
        write_frame(frame, "f", tmp_path)


def test_a_planted_link_is_replaced_never_written_through(tmp_path, tips):
    """The file name is predictable (the content's fingerprint): a link planted under it
    must neither count as the frame nor have the host write through it."""
    probe = tmp_path / "probe"
    probe.mkdir()
    name = write_frame(tips, "tips", probe)[0]
    data = tmp_path / "data"
    data.mkdir()
    victim = tmp_path / "host-file.txt"
    victim.write_text("precious")
    (data / name).symlink_to(victim)
    written = write_frame(tips, "tips", data)
    assert written[2] is True and victim.read_text() == "precious"
    assert not (data / name).is_symlink()
    pd.testing.assert_frame_equal(pd.read_parquet(data / name), tips)
    hard = data / "other.parquet"
    (data / name).unlink()
    hard.write_text("not a frame")
    os.link(hard, data / name)  # a hard link to a file the sandbox controls
    assert write_frame(tips, "tips", data)[2] is True and hard.read_text() == "not a frame"


def test_an_in_place_edit_is_written_anew_and_an_unchanged_frame_is_not(tmp_path, tips):
    frame = tips.copy()
    first, _, written = write_frame(frame, "t", tmp_path)
    assert written and write_frame(frame, "t", tmp_path)[1:] == ([], False)
    frame.iloc[3, 0] = 1234.5  # in place: same object, new content
    second, _, written = write_frame(frame, "t", tmp_path)
    assert second != first and written
    assert pd.read_parquet(tmp_path / second).iloc[3, 0] == 1234.5


def test_mixed_object_column_warns_again_when_its_file_exists(tmp_path):
    frame = pd.DataFrame({"mixed": [1, "two", 3.0, None]})
    _, warnings, written = write_frame(frame, "f", tmp_path)
    assert warnings and written
    assert write_frame(frame, "f", tmp_path)[1:] == (warnings, False)
