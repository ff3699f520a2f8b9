"""Allow-list filtering of single kernel outputs (nbformat output dicts)."""

from __future__ import annotations

import base64
import binascii
import io
import json
from typing import Any

import nh3
from PIL import Image

from ..runtime import FIGURE_METADATA_KEY, METRICS_MIME, json_safe

MAX_TEXT = 100_000  # characters per text field
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_IMAGE_SIDE = 10_000
MAX_IMAGE_PIXELS = 40_000_000
MAX_METRICS_BYTES = 200_000
IMAGE_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG"}
# Tags a pandas table or simple rich text needs; no scripts, styles, forms, links to elsewhere.
HTML_TAGS = {"table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption", "colgroup", "col",
             "div", "span", "p", "br", "b", "i", "em", "strong", "code", "pre", "ul", "ol", "li",
             "h1", "h2", "h3", "h4", "small", "sub", "sup"}
HTML_ATTRIBUTES = {"th": {"colspan", "rowspan"}, "td": {"colspan", "rowspan"}}


def cap_text(text: Any, limit: int = MAX_TEXT) -> str:
    text = text if isinstance(text, str) else "".join(map(str, text)) if isinstance(text, list) else str(text)
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {len(text) - limit} more characters cut]\n"


def sanitize_html(html: str) -> str:
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


def checked_metrics(data: Any) -> dict[str, Any] | None:
    if isinstance(data, str):  # some frontends deliver JSON MIME data as text
        try:
            data = json.loads(data)
        except ValueError:
            return None
    if not isinstance(data, dict):
        return None
    clean = json_safe(data)
    if len(json.dumps(clean)) > MAX_METRICS_BYTES:
        return None
    return {cap_text(k, 200): cap_text(v, 2000) if isinstance(v, str) else v
            for k, v in clean.items()}


def clean_output(output: dict[str, Any]) -> dict[str, Any] | None:
    """The output reduced to allowed, checked content, or None if nothing is left."""
    kind = output.get("output_type")
    if kind == "stream":
        name = output.get("name") if output.get("name") in ("stdout", "stderr") else "stdout"
        return {"output_type": "stream", "name": name, "text": cap_text(output.get("text", ""))}
    if kind == "error":
        return {"output_type": "error", "ename": cap_text(output.get("ename", ""), 200),
                "evalue": cap_text(output.get("evalue", ""), 5000),
                "traceback": [cap_text(line, 5000) for line in output.get("traceback", [])[:100]]}
    if kind not in ("display_data", "execute_result"):
        return None
    data = output.get("data") if isinstance(output.get("data"), dict) else {}
    clean: dict[str, Any] = {}
    for mime in IMAGE_FORMATS:
        if mime in data and (image := checked_image(data[mime], mime)):
            clean[mime] = image
    if METRICS_MIME in data and (metrics := checked_metrics(data[METRICS_MIME])) is not None:
        clean[METRICS_MIME] = metrics
    if isinstance(data.get("text/html"), (str, list)):
        clean["text/html"] = sanitize_html(cap_text(data["text/html"]))
    if "text/plain" in data:
        clean["text/plain"] = cap_text(data["text/plain"], 20_000)
    if not clean:
        return None
    metadata = {}
    received = output.get("metadata") if isinstance(output.get("metadata"), dict) else {}
    title = received.get(FIGURE_METADATA_KEY)
    if isinstance(title, dict) and isinstance(title.get("title"), str):
        metadata[FIGURE_METADATA_KEY] = {"title": cap_text(title["title"], 200)}
    return {"output_type": "display_data", "data": clean, "metadata": metadata}
