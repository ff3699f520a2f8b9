"""The process stage trusts nothing from the sandbox (host-side checks, no kernel needed)."""

import base64
import io
import os
import pickle
import struct
import zlib

import pytest
from PIL import Image

from jupyter_analyst.results import clean_output, collect
from jupyter_analyst.results.collect import MAX_FILES
from jupyter_analyst.runtime import METRICS_MIME


def png_bytes(width=4, height=3) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "red").save(buffer, format="PNG")
    return buffer.getvalue()


def giant_png_header() -> bytes:
    """A PNG whose header claims 100000 x 100000 pixels (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    chunk = (struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
             + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)))
    return b"\x89PNG\r\n\x1a\n" + chunk


def display(data, metadata=None):
    return {"output_type": "display_data", "data": data, "metadata": metadata or {}}


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_javascript_svg_widgets_and_unknown_types_are_dropped():
    hostile = display({
        "application/javascript": "alert(document.cookie)",
        "image/svg+xml": "<svg onload='alert(1)'/>",
        "application/vnd.jupyter.widget-view+json": {"model_id": "x"},
        "text/x-python": "import os",
    })
    assert clean_output(hostile) is None


def test_html_is_sanitised():
    html = ("<table><tr><td onclick='steal()'>1</td></tr></table><script>alert(1)</script>"
            "<img src=x onerror=alert(1)><a href='javascript:alert(1)'>x</a>"
            "<iframe src='//evil'></iframe>")
    clean = clean_output(display({"text/html": html}))["data"]["text/html"]
    for bad in ("script", "onclick", "onerror", "javascript:", "iframe", "<img"):
        assert bad not in clean
    assert "<td>1</td>" in clean


def test_real_png_passes_and_fake_or_giant_png_does_not():
    assert clean_output(display({"image/png": b64(png_bytes())}))["data"]["image/png"]
    pickled = pickle.dumps({"x": 1})
    for raw in (pickled, b"GIF89a....", giant_png_header(), b"\x89PNG\r\n\x1a\nbroken"):
        assert clean_output(display({"image/png": b64(raw)})) is None
    assert clean_output(display({"image/png": "not base64 !!!"})) is None
    # A JPEG declared as PNG is not accepted as PNG.
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buffer, format="JPEG")
    assert clean_output(display({"image/png": b64(buffer.getvalue())})) is None


def test_huge_stream_is_capped():
    text = "A" * 5_000_000
    clean = clean_output({"output_type": "stream", "name": "stdout", "text": text})
    assert len(clean["text"]) < 200_000 and "cut" in clean["text"]


def test_metrics_must_be_a_json_object():
    good = clean_output(display({METRICS_MIME: {"a": 1.5, "b": "NaN"}}))
    assert good["data"][METRICS_MIME] == {"a": 1.5, "b": "NaN"}
    assert clean_output(display({METRICS_MIME: ["not", "a", "dict"]})) is None


def test_collect_files_only_regular_safe_and_allowed(tmp_path):
    out = tmp_path / "outputs"
    out.mkdir()
    (out / "summary.csv").write_text("a,b\n1,2\n")
    (out / "plot.png").write_bytes(png_bytes())
    (out / "fake.png").write_bytes(pickle.dumps([1, 2]))
    (out / "model.pkl").write_bytes(pickle.dumps([1, 2]))
    (out / "page.html").write_text("<script>alert(1)</script>")
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    os.symlink(secret, out / "link.txt")
    os.mkfifo(out / "pipe.csv")  # would block a naive reader forever
    (out / "big.csv").write_bytes(b"x" * (6 * 1024 * 1024))
    (out / "metrics.json").write_text('{"rows": 10, "mean": 2.5}')
    collected = collect([], out)
    names = [d["name"] for d in collected.data_outputs]
    assert names == ["summary.csv"]
    assert [v["title"] for v in collected.visualizations] == ["plot"]
    assert collected.metrics == {"rows": 10, "mean": 2.5}
    assert "host secret" not in repr(collected)
    skipped = " ".join(collected.skipped_files)
    for name in ("fake.png", "model.pkl", "page.html", "link.txt", "pipe.csv", "big.csv"):
        assert name in skipped


def test_collect_caps_the_number_of_files(tmp_path):
    for i in range(MAX_FILES + 15):
        (tmp_path / f"t{i:03}.csv").write_text("a\n1\n")
    collected = collect([], tmp_path)
    assert len(collected.data_outputs) == MAX_FILES


def test_collect_builds_titled_visualizations_and_metrics():
    outputs = [
        clean_output({"output_type": "stream", "name": "stdout", "text": "hello\n"}),
        clean_output(display({METRICS_MIME: {"sharpe": 1.2}})),
        clean_output(display({"image/png": b64(png_bytes())},
                             {"jupyter-analyst": {"title": "Equity"}})),
    ]
    collected = collect(outputs, None)
    assert collected.stdout == "hello\n"
    assert collected.metrics == {"sharpe": 1.2}
    assert collected.visualizations[0]["title"] == "Equity"
    assert collected.visualizations[0]["format"] == "png"


def test_a_table_keeps_its_text_for_terminals_without_the_escapes_it_carried():
    from jupyter_analyst import AnalysisResult
    from jupyter_analyst.rendering import display_outputs

    shown = display({"text/html": "<table><tr><td>Sun</td><td>3.26</td></tr></table>",
                     "text/plain": "day\nSun    3.26\x1b]0;owned\x07\x1b[2J"})
    collected = collect([clean_output(shown)], None)
    [table] = collected.tables
    assert table["text"] == "day\nSun    3.26"
    result = AnalysisResult(query="average tip by day", success=True)
    result.tables = collected.tables
    [bundle] = [o["data"] for o in display_outputs(result) if "text/html" in o["data"]
                and "<table>" in o["data"]["text/html"]]
    assert bundle["text/plain"] == "day\nSun    3.26"


@pytest.mark.parametrize("metadata", [[], "x", {"jupyter-analyst": "not a dict"}])
def test_odd_metadata_is_ignored(metadata):
    clean = clean_output(display({"image/png": b64(png_bytes())}, metadata))
    assert clean["metadata"] == {}
