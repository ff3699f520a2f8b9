"""The host never raises on what the sandbox sends, caps every text, and keeps a total quota."""

from __future__ import annotations

import base64
import io
import json
import os

import pytest
from PIL import Image

from jupyter_analyst import untrusted
from jupyter_analyst.results import Intake, clean_output
from jupyter_analyst.runtime import METRICS_MIME
from jupyter_analyst.untrusted import (
    MAX_ANALYSIS_BYTES,
    MAX_ERROR_TEXT,
    MAX_STREAM_TEXT,
    kernel_output,
    message_part,
    terminal_safe,
)


def display(data, metadata=None):
    return {"output_type": "display_data", "data": data, "metadata": metadata or {}}


def nested(depth: int) -> dict:
    """A dict ``depth`` levels deep, built without recursion."""
    top = inner = {}
    for _ in range(depth - 1):
        inner["next"] = {}
        inner = inner["next"]
    return top


@pytest.mark.parametrize("content", [
    {"ename": {"a": 1}, "evalue": {"nested": ["x"]}, "traceback": {"not": "a list"}},
    {"ename": 7, "evalue": None, "traceback": "one string, not a list"},
    {"ename": "ValueError", "evalue": ["part ", "two"], "traceback": [1, None, "real line", {}]},
    {},
])
def test_error_fields_of_any_type_become_text(content):
    output = kernel_output("error", content)
    assert isinstance(output["ename"], str) and output["ename"]
    assert isinstance(output["evalue"], str)
    assert all(isinstance(line, str) for line in output["traceback"])
    assert clean_output(output) == output  # the results stage agrees with the kernel client


@pytest.mark.parametrize("kind,content", [
    ("stream", {"name": "stdin", "text": {"x": 1}}),
    ("stream", {"name": ["stdout"], "text": ["a", 3, "b"]}),
    ("display_data", {"data": ["image/png", "..."], "metadata": "odd"}),
    ("display_data", {"data": {1: "x", "text/plain": "ok"}, "metadata": [1]}),
    ("execute_result", {"data": None, "metadata": None}),
    ("stream", "not a dict at all"),
])
def test_message_fields_are_type_checked(kind, content):
    output = kernel_output(kind, content)
    if not isinstance(content, dict):
        assert output is None
        return
    if kind == "stream":
        assert output["name"] == "stdout" and isinstance(output["text"], str)
    else:
        assert isinstance(output["data"], dict) and isinstance(output["metadata"], dict)
        assert all(isinstance(k, str) for k in output["data"])
    clean_output(output)  # and nothing downstream raises either


def test_a_huge_exception_message_is_capped_before_it_becomes_the_error():
    message = "Ω" * (20 * 1024 * 1024)
    output = kernel_output("error", {"ename": "RuntimeError", "evalue": message,
                                     "traceback": [message] * 3000})
    assert len(output["evalue"]) < MAX_ERROR_TEXT + 100
    assert "more characters cut" in output["evalue"]
    assert len(output["traceback"]) == untrusted.MAX_TRACEBACK_LINES
    assert sum(map(len, output["traceback"])) < 600_000


@pytest.mark.parametrize("raw,reason", [
    (b"[" * 2500 + b"]" * 2500, "nested deeper than 32"),
    (b'{"data": {"x": ' + b"7" * 10_000 + b"}}", "longer than 40 digits"),
    (b'{"a": [1, 2', "not valid JSON"),
    (b"\xff\xfe garbage", "not valid JSON"),
])
def test_message_parts_are_bounded_before_parsing_and_never_raise(raw, reason):
    part = message_part(raw)
    assert reason in part[untrusted.INVALID]
    assert part["msg_id"] == "" and part["msg_type"] == ""  # a header stand-in matches nothing
    shown = kernel_output("display_data", part)
    assert shown["output_type"] == "stream" and reason in shown["text"]
    intake = Intake()
    assert intake.clean(shown) is None  # not printed output: a notice
    assert any(reason in notice for notice in intake.collect(None).notices)
    error = kernel_output("error", part)
    assert error["output_type"] == "error" and reason in error["evalue"]


def test_message_parts_within_bounds_parse_as_json():
    content = {"data": {"text/plain": "[[{not brackets}]] \\\" 99999999999999999999999999999"},
               "n": [[[1.5e300, -3]]], "big": 10**30}
    assert message_part(json.dumps(content).encode()) == content


@pytest.mark.parametrize("metrics", [
    json.dumps(nested(30)).replace("{}", "[" * 1900 + "]" * 1900),  # as text: 1,930 deep
    nested(2100),  # already parsed: 2,100 deep
    '{"population": ' + "3" * 12_000 + "}",
    {"population": int("8" * 600)},
    ["not", "an", "object"],
])
def test_hostile_metrics_are_reported_as_left_out(metrics):
    intake = Intake()
    assert intake.clean(display({METRICS_MIME: metrics})) is None
    collected = intake.collect(None)
    assert collected.metrics == {}
    assert any("metrics that could not be used" in n for n in collected.notices)


SAMPLE_ESCAPES = (
    "total\x1b[1;32m 42\x1b[0m\n"          # colour (CSI)
    "\x1b]52;c;c2VjcmV0\x07"               # OSC 52: write the clipboard
    "\x1b]8;;https://example.invalid/x\x1b\\click\x1b]8;;\x1b\\\n"  # OSC 8 hyperlink
    "\x1b[?25lhidden cursor\x1b[?25h\n"     # cursor hide/show
    "\x1bP1$qm\x1b\\\x1b_app\x1b\\\x1b^pm\x1b\\\x1bXsos\x1b\\"  # DCS, APC, PM, SOS
    "\x9b2J\x9d0;title\x9c"                # 8-bit CSI, OSC, ST
    "ok\x1b\x07\x00\x7f\tcol2\n"           # lone ESC, BEL, NUL, DEL; the tab stays
    "rm -rf ~\rIn [7]: looks fine\x08\x08\x08\n"  # overprinting that fakes a prompt
)


def test_terminal_escapes_are_removed_and_overprinting_hides_nothing():
    clean = terminal_safe(SAMPLE_ESCAPES)
    assert "\x1b" not in clean and not any(0x80 <= ord(c) <= 0x9f for c in clean)
    assert not any(ord(c) < 32 and c not in "\n\t" for c in clean)
    assert "c2VjcmV0" not in clean and "example.invalid" not in clean
    assert "total 42\n" in clean and "click\n" in clean and "hidden cursor\n" in clean
    assert "ok\tcol2\n" in clean
    assert "rm -rf ~\nIn [7]: looks fine\n" in clean  # both visible, one after the other


def test_escapes_are_removed_from_printed_output_and_tracebacks():
    stream = clean_output({"output_type": "stream", "name": "stderr", "text": SAMPLE_ESCAPES})
    error = kernel_output("error", {"ename": "E\x1b]52;c;eA==\x07rr", "evalue": "\x1b[2Jwiped",
                                    "traceback": ["\x1b[0;31m---> 1\x1b[0m x()", SAMPLE_ESCAPES]})
    for text in (stream["text"], error["ename"], error["evalue"], *error["traceback"]):
        assert "\x1b" not in text and "\r" not in text and "\x9b" not in text
    assert error["traceback"][0] == "---> 1 x()" and error["evalue"] == "wiped"


@pytest.fixture(scope="module")
def big_png() -> str:
    """A valid PNG of about 9.7 MB (noise does not compress), as base64."""
    raw = noise_png(1_800)
    assert 9 * 1024**2 < len(raw) < untrusted.MAX_IMAGE_BYTES
    return base64.b64encode(raw).decode()


def noise_png(side: int) -> bytes:
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def test_many_valid_large_images_stay_within_the_total_and_say_what_was_left_out(
        big_png, tmp_path):
    intake = Intake()
    shown = [intake.clean(display({"image/png": big_png})) for _ in range(40)]
    kept = [output for output in shown if output is not None]
    assert 3 <= len(kept) < 40
    assert sum(len(o["data"]["image/png"]) for o in kept) <= MAX_ANALYSIS_BYTES
    (tmp_path / "extra.png").write_bytes(noise_png(900))  # 2.4 MB: files share the quota
    (tmp_path / "small.csv").write_text("x\n1\n")
    collected = intake.collect(tmp_path)
    assert len(collected.visualizations) == len(kept)
    notices = " ".join(collected.notices)
    assert f"{40 - len(kept)} output(s)" in notices and "50 MB" in notices
    assert "extra.png: over the total size" in notices
    assert [d["name"] for d in collected.data_outputs] == ["small.csv"]


def test_printed_output_is_cut_at_the_total_and_said_so():
    intake = Intake()
    chunk = {"output_type": "stream", "name": "stdout", "text": "y" * 90_000 + "\n"}
    passed = [intake.clean(chunk) for _ in range(15)]
    assert sum(len(o["text"]) for o in passed if o) == MAX_STREAM_TEXT
    assert passed[-1] is None
    collected = intake.collect(None)
    assert any("Printed output cut" in n for n in collected.notices)
    assert len(collected.stdout) < 101_000


def test_refused_output_types_are_named_in_a_notice():
    intake = Intake()
    intake.clean(display({"application/javascript": "fetch('//x')",
                          "image/svg+xml": "<svg/>"}))
    intake.clean(display({"image/png": "bm90IGFuIGltYWdl"}))
    notices = " ".join(intake.collect(None).notices)
    assert "application/javascript, image/svg+xml" in notices
    assert "not a valid image" in notices
