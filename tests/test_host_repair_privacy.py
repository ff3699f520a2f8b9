"""Privacy mode 'schema': a repair request carries no cell value the kernel's error echoed.

Driven through the real anthropic SDK against tests/llm_server.py; the checks are on
the raw request body, which is exactly what would leave the machine.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from llm_server import analysis, llm_server  # noqa: F401

from jupyter_analyst.context import describe_frames
from jupyter_analyst.generation import FailedAttempt, GenerationRequest
from jupyter_analyst.generation.claude import ClaudeGenerator

pytestmark = pytest.mark.llm

FIXED = "from jupyter_analyst.runtime import save_metrics\nsave_metrics({'n': len(members)})\n"
FAILED = 'members["score"] = members["member"].astype(float)\nprint(members.loc[904417])\n'
# Kernel errors echoing cell values, quoted and not: names, an id, a mixed token.
KERNEL_ERRORS = [
    "ValueError: could not convert string to float: Katherine Johnson\n"
    'Cell 4, line 1: members["score"] = members["member"].astype(float)',
    "KeyError: 904418",
    "ValueError: Unable to parse string \"Mary-Jackson-77\" at position 3",
    "TypeError: '<' not supported between instances of 'str' and 'float': Dorothy Vaughan",
]
VALUES = ("Katherine", "Johnson", "904418", "Mary", "Jackson", "Dorothy", "Vaughan")


def previous_attempts(content: str) -> list[dict]:
    block = content.split("<previous_attempts>\n", 1)[1].split("\n</previous_attempts>")[0]
    return json.loads(block.split("\n", 1)[1])


def members() -> pd.DataFrame:
    return pd.DataFrame({"member": ["Katherine Johnson", "Mary-Jackson-77", "Dorothy Vaughan"],
                         "score": [91.5, 78.0, 88.25], "badge": [904417, 904418, 904419]})


def repair_request(mode: str, *failures: FailedAttempt) -> GenerationRequest:
    context = describe_frames({"members": members()}, mode=mode)
    return GenerationRequest(question="Average score per member?", context=context,
                             failures=list(failures))


async def test_schema_mode_repair_sends_no_echoed_cell_value(llm_server):
    llm_server.script(analysis(FIXED))
    failures = [FailedAttempt(FAILED, error) for error in KERNEL_ERRORS]
    await ClaudeGenerator().generate(repair_request("schema", *failures))
    raw = llm_server.raw_bodies()[0]
    for value in VALUES:
        assert value not in raw, value
    errors = [a["error"] for a in previous_attempts(llm_server.bodies()[0]["messages"][0]
                                                     ["content"])]
    # What the repair needs stays: the exception, the message's words, the code line.
    assert errors[0].startswith("ValueError: could not convert string to float: …")
    assert 'members["score"] = members["member"].astype(float)' in errors[0]
    assert errors[1] == "KeyError: …"
    assert "Unable to parse string" in errors[2] and "position 3" in errors[2]
    assert "not supported between instances of 'str' and 'float'" in errors[3]


async def test_validator_findings_keep_their_words_in_schema_mode(llm_server):
    llm_server.script(analysis(FIXED))
    finding = ("The safety check refused this code.\n- line 2: '_mgr' is private to its "
               "library and may change or bypass checks; use the public API instead.")
    await ClaudeGenerator().generate(repair_request(
        "schema", FailedAttempt("members._mgr\n", finding, stage="validate")))
    [attempt] = previous_attempts(llm_server.bodies()[0]["messages"][0]["content"])
    assert attempt["error"] == finding


async def test_sample_mode_repair_keeps_the_error_as_it_was(llm_server):
    llm_server.script(analysis(FIXED))
    await ClaudeGenerator().generate(repair_request("sample", FailedAttempt(FAILED,
                                                                            KERNEL_ERRORS[1])))
    [attempt] = previous_attempts(llm_server.bodies()[0]["messages"][0]["content"])
    assert attempt["error"] == "KeyError: 904418"
