"""The one sanitiser for prose: insights, explanations and notices, offline or model-written.

Prose can carry what came from a cell value or a model (``Sun![x][r]`` and, in
another line, ``[r]: https://…``). A remote image is fetched as soon as Markdown
renders, with data in its URL, so prose is never rendered as Markdown:

- ``plain_text`` parses it as CommonMark (markdown-it-py) and keeps only its text:
  images become their alt text, links their link text, reference definitions go,
  raw HTML goes, and markup that entities or escapes decode to (``&lt;img …&gt;``)
  goes too; terminal escapes and controls are removed.
- ``markdown`` turns that plain text into Markdown in which every ASCII punctuation
  character is backslash-escaped, so any CommonMark or GFM renderer shows exactly
  the text: no emphasis, no link, no image, no HTML, no entity.

URLs (bare or from an autolink) stay as visible text: they show where they point,
and are often the user's own data; escaped, no renderer makes a link of them.
"""

from __future__ import annotations

import html
import re

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

from .untrusted import MAX_TEXT, cap, terminal_safe

# Block rules that would eat text are off: "- 3.2% lower", "# of rows", "2023. Sales rose",
# "> 5 items" and indented lines are text here, not a list, heading, quote or code block.
_PARSER = MarkdownIt("commonmark", {"html": True}).disable(
    ["code", "blockquote", "hr", "list", "heading", "lheading"])
_TEXT_TOKENS = {"text", "text_special", "code_inline"}
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
_HIDING_TAG = re.compile(r"<(/?)(script|style)\b", re.IGNORECASE)  # their content is no text


def plain_text(prose: str) -> str:
    """The text of ``prose`` with no Markdown image, link, HTML or terminal escape in it."""
    blocks = []
    for token in _PARSER.parse(cap(prose or "", MAX_TEXT)):
        if token.type == "inline":
            blocks.append(_inline_text(token.children or []))
        elif token.type in ("fence", "code_block"):
            blocks.append(token.content)
    text = "\n".join(block.strip() for block in blocks if block.strip())
    # What the parser decoded (entities, escapes) may be markup again: remove the tags,
    # give back the characters, and let no "<" that is left start a tag.
    text = html.unescape(nh3.clean(text, tags=set(), clean_content_tags={"script", "style"}))
    return terminal_safe(_TAG_START.sub("< ", text)).strip()


def markdown(prose: str) -> str:
    """``prose`` as one line of Markdown that renders as exactly its plain text."""
    return _PUNCTUATION.sub(r"\\\1", " ".join(plain_text(prose).split()))


def _inline_text(tokens: list[Token]) -> str:
    parts = []
    hiding = False
    for token in tokens:
        if token.type == "html_inline" and (tag := _HIDING_TAG.match(token.content)):
            hiding = not tag.group(1)
        elif hiding:
            continue
        elif token.type in _TEXT_TOKENS:
            parts.append(token.content)
        elif token.type == "image":  # its alt text, never its source
            parts.append(_inline_text(token.children or []))
        elif token.type == "softbreak":
            parts.append(" ")
        elif token.type == "hardbreak":
            parts.append("\n")
        # link_open/close, html_inline, emphasis markers: nothing (a link's text is a sibling)
    return "".join(parts)
