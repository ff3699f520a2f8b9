"""Allow-list filtering of single kernel outputs (nbformat output dicts)."""

from __future__ import annotations

import base64
import binascii
import io
import json
from typing import Any

import nh3
from PIL import Image

from .. import untrusted
from ..runtime import FIGURE_METADATA_KEY, METRICS_MIME, json_safe
from ..untrusted import (
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    MAX_IMAGE_SIDE,
    MAX_METRIC_TEXT,
    MAX_METRICS_BYTES,
    MAX_NAME,
    MAX_PLAIN_TEXT,
    MAX_TEXT,
    InvalidJSON,
)

IMAGE_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG"}
# Tags a pandas table or simple rich text needs; no scripts, styles, forms, links to elsewhere.
HTML_TAGS = {"table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption", "colgroup", "col",
             "div", "span", "p", "br", "b", "i", "em", "strong", "code", "pre", "ul", "ol", "li",
             "h1", "h2", "h3", "h4", "small", "sub", "sup"}
HTML_ATTRIBUTES = {"th": {"colspan", "rowspan"}, "td": {"colspan", "rowspan"}}
SHOWN_MIME = (*IMAGE_FORMATS, METRICS_MIME, "text/html", "text/plain")


def cap_text(text: Any, limit: int = MAX_TEXT) -> str:
    """Sandbox text capped at ``limit`` and stripped of terminal escapes (``untrusted.text``)."""
    return untrusted.text(text, limit)


def sanitize_html(html: Any) -> str:
    return nh3.clean(cap_text(html), tags=HTML_TAGS, attributes=HTML_ATTRIBUTES)


def checked_image(data: Any, mime: str) -> str | None:
    """The base64 text of a real PNG/JPEG within size limits, or None."""
    if not isinstance(data, str) or len(data) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        return None
    try:
        raw = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        return None
    return base64.b64encode(raw).decode("ascii") if image_ok(raw, mime) else None


def image_ok(raw: bytes, mime: str) -> bool:
    """True when ``raw`` is a PNG/JPEG of the claimed type with sane dimensions.

    Pillow reads only the header here, so a file claiming giant dimensions is
    refused before anything is decoded.
    """
    if len(raw) > MAX_IMAGE_BYTES:
        return False
    try:
        with Image.open(io.BytesIO(raw)) as image:
            width, height = image.size
            kind = image.format
    except Exception:  # Pillow raises many types for hostile bytes; all mean "not an image"
        return False
    return (kind == IMAGE_FORMATS.get(mime) and 0 < width <= MAX_IMAGE_SIDE
            and 0 < height <= MAX_IMAGE_SIDE and width * height <= MAX_IMAGE_PIXELS)


def checked_metrics(data: Any) -> dict[str, Any]:
    """Metrics as a flat, capped JSON object; raises InvalidJSON saying why they are refused.

    Text is parsed with depth and number length bounded first; parsed values are
    checked for the same bounds without recursion before anything walks them.
    """
    if isinstance(data, (str, bytes)):  # some frontends deliver JSON MIME data as text
        data = untrusted.loads(data)
    if not isinstance(data, dict):
        raise InvalidJSON("not a JSON object of names and values")
    problem = untrusted.json_problem(data)
    if problem:
        raise InvalidJSON(problem)
    clean = json_safe(data)
    if len(json.dumps(clean)) > MAX_METRICS_BYTES:
        raise InvalidJSON(f"larger than {MAX_METRICS_BYTES:,} bytes")
    return {cap_text(k, MAX_NAME): cap_text(v, MAX_METRIC_TEXT) if isinstance(v, str) else v
            for k, v in clean.items()}


def clean_output(output: dict[str, Any], notes: list[str] | None = None) -> dict[str, Any] | None:
    """The output reduced to allowed, checked content, or None if nothing is left.

    Why a part was left out is appended to ``notes`` (one short reason per part),
    so that nothing disappears without the user being told.
    """
    notes = [] if notes is None else notes
    if not isinstance(output, dict):
        return None
    if isinstance(output.get(untrusted.INVALID), str):  # a message the kernel client refused
        notes.append(output[untrusted.INVALID])
        return None
    kind = output.get("output_type")
    if kind in ("stream", "error"):  # the same type checks and caps as the kernel client's
        return untrusted.kernel_output(kind, output)
    if kind not in ("display_data", "execute_result"):
        return None
    data = output.get("data") if isinstance(output.get("data"), dict) else {}
    clean: dict[str, Any] = {}
    for mime in IMAGE_FORMATS:
        if mime in data:
            if image := checked_image(data[mime], mime):
                clean[mime] = image
            else:
                notes.append(f"an {mime} output that is not a valid image within the limits "
                             f"({MAX_IMAGE_BYTES // 2**20} MB, {MAX_IMAGE_SIDE:,} px a side)")
    if METRICS_MIME in data:
        try:
            clean[METRICS_MIME] = checked_metrics(data[METRICS_MIME])
        except InvalidJSON as exc:
            notes.append(f"metrics that could not be used: {exc}")
    if isinstance(data.get("text/html"), (str, list)):
        clean["text/html"] = sanitize_html(data["text/html"])
    if "text/plain" in data:
        clean["text/plain"] = cap_text(data["text/plain"], MAX_PLAIN_TEXT)
    if not clean:
        left_out = sorted(mime for mime in data if isinstance(mime, str)
                          and mime not in SHOWN_MIME)[:5]
        if left_out:
            notes.append("an output of a type that is not shown: " + ", ".join(
                cap_text(mime, MAX_NAME) for mime in left_out))
        return None
    metadata = {}
    received = output.get("metadata") if isinstance(output.get("metadata"), dict) else {}
    title = received.get(FIGURE_METADATA_KEY)
    if isinstance(title, dict) and isinstance(title.get("title"), str):
        metadata[FIGURE_METADATA_KEY] = {"title": cap_text(title["title"], MAX_NAME)}
    return {"output_type": "display_data", "data": clean, "metadata": metadata}
