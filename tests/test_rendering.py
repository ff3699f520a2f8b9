"""The render stage makes every notebook output, escaping whatever came from elsewhere."""

from jupyter_analyst import AnalysisResult
from jupyter_analyst.prose import markdown
from jupyter_analyst.rendering import ALLOWED_MIME, display_outputs, result_bundle
from jupyter_analyst.safety import SafetyValidator


def hostile_result() -> AnalysisResult:
    evil = "<script>alert(1)</script>"
    return AnalysisResult(
        success=False, query="q", error=f"KeyError: {evil}\n```\n<img src=x onerror=alert(1)>",
        metrics={evil: evil, "sharpe": 1.23456789},
        insights=[f"Look ![x](http://evil/x.png) {evil}"],
        code=f"print('{evil}')", explanation=evil, safety=SafetyValidator().validate("x = 1"),
        backend="local (reduced isolation)", generator={"name": "offline", "model": None},
    )


def all_text(outputs) -> str:
    return " ".join(str(v) for o in outputs for v in o["data"].values())


def test_outputs_use_only_allowed_mime_types():
    outputs = display_outputs(hostile_result(), include_code=True)
    assert {m for o in outputs for m in o["data"]} <= set(ALLOWED_MIME)


def test_nothing_from_the_result_reaches_the_page_unescaped():
    outputs = display_outputs(hostile_result(), include_code=True)
    rich = " ".join(str(o["data"].get(m, "")) for o in outputs
                    for m in ("text/html", "text/markdown"))
    assert "<script>" not in rich and "<img" not in rich and "http://evil" not in rich
    assert "&lt;script&gt;" in rich


def test_metrics_table_and_footer():
    outputs = display_outputs(hostile_result())
    text = all_text(outputs)
    assert "1.235" in text and "backend: local (reduced isolation)" in text


def test_prose_keeps_the_text_of_images_and_drops_html():
    assert markdown("a ![chart](https://x/y.png) <b>b</b>") == "a chart b"


def test_result_repr_bundle_is_escaped():
    bundle = result_bundle(hostile_result())
    assert "<script>" not in bundle["text/html"] and "failed" in bundle["text/plain"]
