"""The host follows no link in the sandbox's directories: real links, FIFOs, devices, holes."""

from __future__ import annotations

import io
import os
import socket
import stat

import pytest
from PIL import Image

from jupyter_analyst import safefs
from jupyter_analyst.results import collect
from jupyter_analyst.untrusted import MAX_FILE_BYTES


@pytest.fixture
def outputs(tmp_path):
    """A sandbox-writable directory, and a host file outside it that must stay untouched."""
    box = tmp_path / "outputs"
    box.mkdir()
    host = tmp_path / "host-notes.txt"
    host.write_text("the host's own notes\n")
    return box, host


def refusal(directory, name, limit=MAX_FILE_BYTES) -> str:
    with safefs.open_dir(directory) as dir_fd, pytest.raises(safefs.Refused) as refused:
        safefs.read_file(dir_fd, name, limit)
    return str(refused.value)


def test_a_regular_file_is_read(outputs):
    box, _ = outputs
    (box / "ok.csv").write_text("k,v\n7,8\n")
    with safefs.open_dir(box) as dir_fd:
        assert safefs.read_file(dir_fd, "ok.csv", 100) == b"k,v\n7,8\n"


def test_links_fifos_sockets_and_devices_are_refused_without_blocking(outputs):
    box, host = outputs
    os.symlink(host, box / "notes.csv")
    os.mkfifo(box / "stream.csv")  # no writer: a blocking open would hang here
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(box / "talk.csv"))
    (box / "sub.csv").mkdir()
    assert refusal(box, "notes.csv") == "a symbolic link"
    assert refusal(box, "stream.csv") == "a FIFO, not a regular file"
    assert refusal(box, "talk.csv") == "a socket, not a regular file"
    assert refusal(box, "sub.csv") == "a directory, not a regular file"
    listener.close()


def test_a_device_node_is_refused(outputs):
    box, _ = outputs
    try:
        os.mknod(box / "zero.csv", 0o600 | stat.S_IFCHR, os.makedev(1, 5))
    except PermissionError:
        pytest.skip("creating device nodes needs CAP_MKNOD")
    assert "a device" in refusal(box, "zero.csv")


def test_hard_links_sparse_files_and_oversized_files_are_refused(outputs):
    box, host = outputs
    os.link(host, box / "linked.txt")
    with open(box / "holes.csv", "wb") as handle:
        handle.truncate(3 * 1024 * 1024)  # 3 MB of nothing but a hole
        handle.seek(3 * 1024 * 1024 - 4)
        handle.write(b"tail")
    (box / "big.csv").write_bytes(b"9" * 4096)
    assert refusal(box, "linked.txt") == "a hard link to another file"
    assert refusal(box, "holes.csv") == "a sparse file (mostly holes)"
    assert refusal(box, "big.csv", limit=1000).startswith("larger than 1,000 bytes")


def test_a_replaced_directory_is_not_opened(outputs, tmp_path):
    box, _ = outputs
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, tmp_path / "swapped")
    with pytest.raises(OSError):
        with safefs.open_dir(tmp_path / "swapped"):
            pass
    collected = collect([], tmp_path / "swapped")
    assert collected.data_outputs == [] and "could not be read" in " ".join(collected.notices)


def test_write_new_replaces_a_planted_link_and_leaves_its_target(outputs):
    box, host = outputs
    os.symlink(host, box / "isolation.txt")
    safefs.write_new(box, "isolation.txt", "network: isolated\n")
    assert host.read_text() == "the host's own notes\n"
    assert not (box / "isolation.txt").is_symlink()
    assert (box / "isolation.txt").read_text() == "network: isolated\n"
    (box / "isolation.txt").unlink()
    (box / "isolation.txt").mkdir()  # a directory planted under the name goes too
    (box / "isolation.txt" / "inner").write_text("x")
    safefs.write_new(box, "isolation.txt", "again\n", mode=0o600)
    assert (box / "isolation.txt").read_text() == "again\n"
    assert stat.S_IMODE(os.stat(box / "isolation.txt").st_mode) == 0o600


def test_clear_dir_removes_links_not_their_targets_and_survives_deep_trees(outputs, tmp_path):
    box, host = outputs
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("keep me")
    os.symlink(precious, box / "dir-link")
    os.symlink(host, box / "file-link")
    os.mkfifo(box / "pipe")
    deep = box
    for level in range(300):  # deeper than MAX_CLEAR_DEPTH, and than a recursion would like
        deep = deep / f"d{level % 7}"
        deep.mkdir()
    (deep / "bottom.csv").write_text("1\n")
    os.symlink(precious, deep / "deep-link")
    safefs.clear_dir(box)
    assert os.listdir(box) == []
    assert (precious / "keep.txt").read_text() == "keep me"
    assert host.read_text() == "the host's own notes\n"


def png(side: int = 6) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (20, 200, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_collect_names_every_file_it_did_not_take(outputs):
    box, host = outputs
    (box / "fine.csv").write_text("a\n1\n")
    (box / "chart.png").write_bytes(png())
    os.symlink(host, box / "sneaky.txt")
    os.link(host, box / "twin.txt")
    os.mkfifo(box / "wait.csv")
    (box / "blob.pkl").write_bytes(b"\x80\x04K\x01.")
    (box / "metrics.json").write_text('{"deep": ' + "[" * 500 + "]" * 500 + "}")
    collected = collect([], box)
    assert [d["name"] for d in collected.data_outputs] == ["fine.csv"]
    assert [v["title"] for v in collected.visualizations] == ["chart"]
    assert collected.metrics == {}
    notice = " ".join(collected.notices)
    for name, why in (("sneaky.txt", "symbolic link"), ("twin.txt", "hard link"),
                      ("wait.csv", "FIFO"), ("blob.pkl", "not allowed"),
                      ("metrics.json", "nested deeper than 32")):
        assert f"{name}: " in notice and why in notice, (name, notice)
    assert "the host's own notes" not in repr(collected)


def test_usage_counts_disk_use_without_following_links_and_stops_at_the_cap(outputs, tmp_path):
    box, host = outputs
    (box / "a.bin").write_bytes(b"x" * 100_000)
    (box / "sub").mkdir()
    (box / "sub" / "b.txt").write_text("b")
    (box / "to-usr").symlink_to("/usr")  # one entry, not the whole of /usr
    with open(box / "hole.bin", "wb") as hole:  # 1 GiB long, a few bytes on disk
        hole.truncate(1024**3)
    held = safefs.usage(box, 10**9, 10**6)
    assert held.entries == 5 and not held.too_deep
    assert 100_000 <= held.bytes < 1024**2
    assert not held.over(10**9, 10**6) and held.over(50_000, 10**6) and held.over(10**9, 4)
    for number in range(1000):
        (box / f"many{number}").touch()
    assert safefs.usage(box, 10**9, 10).entries == 11  # the walk ends just past the cap


def test_usage_of_a_deep_tree_is_over_without_walking_it(outputs):
    box, _ = outputs
    deep = box
    for _ in range(safefs.MAX_CLEAR_DEPTH + 5):
        deep = deep / "d"
        deep.mkdir()
    held = safefs.usage(box, 10**9, 10**6)
    assert held.too_deep and held.over(10**9, 10**6)
