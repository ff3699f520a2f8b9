"""What the host accepts from the sandbox: every cap, and text and JSON made safe to handle.

Everything the sandbox kernel sends or leaves behind is untrusted, whatever code it
ran. The caps on one output, one file and one whole analysis live here, in one
place; the sandbox stage (message conversion), the results stage (outputs and
files) and the render stage all use them. Nothing here raises on hostile input:
a value that does not fit becomes a shorter value or a stated reason.

Terminal escapes (decided here, for everything printed or shown as text):
ESC-introduced sequences are removed whole (CSI such as colours and cursor
hide/show, OSC such as the 52 clipboard write and 8 hyperlinks, DCS, SOS, PM, APC,
and two-character escapes); a lone ESC, every other C0 control but tab and
newline, DEL and every 8-bit C1 control are removed one by one (an 8-bit
introducer's payload stays as harmless visible text, because mis-decoded text
contains C1 characters too); explicit bidirectional overrides and isolates are
removed, so text cannot be shown in another order than it is. Overprinting is
not emulated: a carriage return becomes a newline and a backspace is dropped,
so no printed text can hide or overwrite what came before it (a fake prompt
drawn over real output stays visibly after it).
"""

from __future__ import annotations

import json
import re
from pathlib import PurePath
from typing import Any

import numpy as np

# -- caps: one output ---------------------------------------------------------------
MAX_TEXT = 100_000  # characters of one text: a stream, an HTML table, all printed output
MAX_PLAIN_TEXT = 20_000  # the text/plain form of one display
MAX_ERROR_TEXT = 5_000  # an exception's value, and each line of its traceback
MAX_TRACEBACK_LINES = 100  # the last ones are kept: they say where it failed
MAX_NAME = 200  # exception names, figure titles, metric names, file titles
MAX_METRIC_TEXT = 2_000  # one metric's text value
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_IMAGE_SIDE = 10_000
MAX_IMAGE_PIXELS = 40_000_000
MAX_METRICS_BYTES = 200_000  # one metrics display or metrics.json, as JSON
# One message part (a PNG at the image cap fits, as base64); bounds the work of the checks.
MAX_MESSAGE_BYTES = MAX_IMAGE_BYTES * 4 // 3 + 1024 * 1024
MAX_JSON_DEPTH = 32  # nesting of any JSON from the sandbox, checked before it is parsed
MAX_INT_DIGITS = 40  # digits of one JSON number, checked before it is parsed
# -- caps: the outputs directory ------------------------------------------------------
MAX_FILES = 20  # output files taken
MAX_LISTED = 1_000  # entries looked at, however many there are
MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_ISOLATION_BYTES = 4_096  # run/isolation.txt
# Which output files are taken at all: a plain name, and a type that is data or an image.
TEXT_EXTENSIONS = {".csv": "csv", ".json": "json", ".txt": "txt", ".md": "txt"}
IMAGE_EXTENSIONS = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def output_name_allowed(name: str) -> bool:
    suffix = PurePath(name).suffix.lower()
    return bool(SAFE_NAME.match(name)) and suffix in {**TEXT_EXTENSIONS, **IMAGE_EXTENSIONS}
# -- caps: one analysis in total (display outputs and files together) --------------
MAX_ANALYSIS_BYTES = 50 * 1024 * 1024
MAX_STREAM_TEXT = 1_000_000  # characters of printed output passed on while it runs

INVALID = "jupyter-analyst-invalid"  # key of the stand-in for a message part that was refused

_ESCAPES = re.compile(
    r"\x1b\[[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"  # CSI (also when cut off before its end)
    r"|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC, DCS, SOS, PM, APC up to BEL/ST or end
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]?"  # other escapes (ESC 7, ESC c, ESC ( B) and a lone ESC
    r"|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]"
)
_LINE_BREAK = re.compile(r"\r\n?")
_DIGITS_ONLY = bytes(c if 48 <= c <= 57 else 32 for c in range(256))  # other bytes: spaces
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
_MAX_INT = 10**MAX_INT_DIGITS


class InvalidJSON(ValueError):
    """JSON from the sandbox that is refused; ``str()`` says why."""


def cap(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {len(text) - limit:,} more characters cut]\n"


def terminal_safe(text: str) -> str:
    """``text`` without terminal escapes or controls, newlines and tabs kept (see above)."""
    return _ESCAPES.sub("", _LINE_BREAK.sub("\n", text))


def text(value: Any, limit: int) -> str:
    """Sandbox text as shown: a str (or nbformat's list of str), capped, escape-free.

    Anything else (a dict where text belongs, a number) is not text: ``""``.
    """
    if isinstance(value, list):
        value = "".join(item for item in value if isinstance(item, str))
    if not isinstance(value, str):
        return ""
    return terminal_safe(cap(value, limit))


def kernel_output(kind: str, content: Any) -> dict[str, Any] | None:
    """An iopub message as an nbformat output dict with every field of the right type.

    Texts are capped and stripped of terminal escapes here, before anything reads
    them (the error of a failed run becomes ``AnalysisResult.error``). MIME data is
    only type-checked; the results stage decides what of it is shown.
    """
    if not isinstance(content, dict):
        return None
    if INVALID in content:  # refused by ``message_part``: say so, in the type the kind needs
        article = "an" if kind[:1] in tuple("aeiou") else "a"
        note = f"{article} {kind} message from the sandbox was left out: {content[INVALID]}"
        if kind == "error":  # still an error: the run failed, whatever it sent
            return {"output_type": "error", "ename": "Error", "evalue": f"[{note}]",
                    "traceback": []}
        return {"output_type": "stream", "name": "stderr", "text": f"[{note}]\n", INVALID: note}
    if kind == "stream":
        name = content.get("name") if content.get("name") in ("stdout", "stderr") else "stdout"
        return {"output_type": "stream", "name": name, "text": text(content.get("text"), MAX_TEXT)}
    if kind in ("display_data", "execute_result", "update_display_data"):
        data, metadata = content.get("data"), content.get("metadata")
        return {"output_type": "display_data",
                "data": {k: v for k, v in data.items() if isinstance(k, str)}
                if isinstance(data, dict) else {},
                "metadata": metadata if isinstance(metadata, dict) else {}}
    if kind == "error":
        lines = content.get("traceback")
        lines = lines[-MAX_TRACEBACK_LINES:] if isinstance(lines, list) else []
        return {"output_type": "error",
                "ename": text(content.get("ename"), MAX_NAME) or "Error",
                "evalue": text(content.get("evalue"), MAX_ERROR_TEXT),
                "traceback": [text(line, MAX_ERROR_TEXT) for line in lines
                              if isinstance(line, str)]}
    return None


def loads(raw: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` with the nesting depth and the length of numbers bounded before parsing.

    Raises InvalidJSON, never RecursionError or the int conversion limit's ValueError.
    """
    source = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
    if len(source) > MAX_MESSAGE_BYTES:
        raise InvalidJSON(f"larger than {MAX_MESSAGE_BYTES:,} bytes")
    # The text outside strings, by C-speed byte and array operations only (a hostile message
    # may hold millions of strings or brackets): escaped backslashes and quotes go first, so
    # every quote left delimits a string.
    unquoted = source.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = b"".join(unquoted.split(b'"')[::2])
    if max(map(len, skeleton.translate(_DIGITS_ONLY).split()), default=0) > MAX_INT_DIGITS:
        raise InvalidJSON(f"a number longer than {MAX_INT_DIGITS} digits")
    brackets = np.frombuffer(skeleton.translate(None, _NOT_BRACKETS), dtype=np.uint8)
    # The depth at each bracket is the running sum of +1 (opening) and -1 (closing).
    opening = (brackets == ord("[")) | (brackets == ord("{"))
    levels = (opening.view(np.int8) * 2 - 1).cumsum(dtype=np.int32)
    if levels.size and levels.max() > max_depth:
        raise InvalidJSON(f"nested deeper than {max_depth} levels")
    try:
        return json.loads(source.decode("utf-8", "replace"))
    except (ValueError, RecursionError) as exc:
        raise InvalidJSON(f"not valid JSON ({type(exc).__name__})") from None


def message_part(raw: str | bytes) -> Any:
    """The kernel client's unpacker: ``loads``, or a stand-in that names why it was refused.

    The stand-in has the header keys jupyter_client reads, so a refused header or
    parent header is an unmatched message (ignored), and refused content becomes a
    line saying what was left out (``kernel_output``); nothing raises in the client.
    """
    try:
        return loads(raw)
    except InvalidJSON as exc:
        return {"msg_id": "", "msg_type": "", INVALID: str(exc)}


def json_problem(value: Any, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why an already-parsed JSON value is refused (too deep, a too long number), or None.

    Iterative, so depth itself cannot exhaust the stack.
    """
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list, tuple)):
            if depth > max_depth:
                return f"nested deeper than {max_depth} levels"
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) >= _MAX_INT:
            return f"a number longer than {MAX_INT_DIGITS} digits"
    return None
