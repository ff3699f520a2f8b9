"""Approvals that survive a kernel restart: the store, its keys, and the magic using them."""

from __future__ import annotations

import json

import pytest
from conftest import fresh_shell
from IPython.utils.capture import capture_output

from jupyter_analyst.approvals import ApprovalStore, approval_key, data_digest
from jupyter_analyst.result import AnalysisPending, PendingResult


def test_store_remembers_forgets_and_survives_a_new_process_view(tmp_path):
    store = ApprovalStore(tmp_path)
    key = approval_key("q", "data", "print(1)")
    assert not store.is_approved(key)
    store.approve(key)
    assert ApprovalStore(tmp_path).is_approved(key)  # read from the file, not from memory
    saved = json.loads((tmp_path / ".jupyter-analyst" / "approvals.json").read_text())
    assert "print(1)" not in json.dumps(saved)  # digests only, never code
    assert store.revoke() == 1 and not store.is_approved(key)


@pytest.mark.parametrize("damage", ["{not json", "[1, 2]", '{"approved": [1]}', ""])
def test_a_damaged_file_counts_as_no_approvals(tmp_path, damage):
    path = tmp_path / ".jupyter-analyst" / "approvals.json"
    path.parent.mkdir()
    path.write_text(damage)
    store = ApprovalStore(tmp_path)
    assert len(store) == 0
    store.approve("k")
    assert store.is_approved("k")


def test_any_change_to_question_data_or_code_needs_a_new_approval(tips):
    data = data_digest({"tips": tips})
    key = approval_key("mean tip", data, "print(tips.tip.mean())")
    assert key == approval_key("mean tip  ", data_digest({"tips": tips.copy()}),
                               "print(tips.tip.mean())")
    edited = tips.copy()
    edited.loc[0, "tip"] += 1  # an in-place change of one value
    assert key != approval_key("mean tip", data_digest({"tips": edited}), "print(tips.tip.mean())")
    assert key != approval_key("median tip", data, "print(tips.tip.mean())")
    assert key != approval_key("mean tip", data, "print(tips.tip.mean()) ")
    assert key != approval_key("mean tip", data_digest({"other": tips}), "print(tips.tip.mean())")


def test_a_pending_result_says_which_cell_waits():
    pending = PendingResult("Show the distribution of tip\nmore words", cell=7)
    with pytest.raises(AnalysisPending, match=r"cell \[7\] \('Show the distribution of tip'\)"):
        print(pending.metrics)
    with pytest.raises(AnalysisPending):
        bool(pending)
    assert "waiting for your approval" in repr(pending)


@pytest.mark.kernel
def test_approved_code_reruns_without_asking_and_anything_else_waits(tips, tmp_path):
    shell = fresh_shell()
    shell.run_line_magic("load_ext", "jupyter_analyst")
    try:
        for setting in ("backend = 'local'", "model = 'offline'", "widgets = 'always'"):
            shell.run_line_magic("config", f"Analyze.{setting}")
        magics = shell.magics_manager.registry["Analyze"]
        magics.approvals = ApprovalStore(tmp_path)
        shell.user_ns["tips"] = tips
        question = "Show the distribution of tip"
        with capture_output():
            shell.run_cell_magic("analyze", "tips --out first", question)
        assert isinstance(shell.user_ns["first"], PendingResult)  # a panel waits for a click

        session = magics.agent_for().session(question, {"tips": tips})
        proposal = magics.agent_for().submit(session.prepare()).result(60)
        magics.approvals.approve(approval_key(question, data_digest({"tips": tips}),
                                              proposal.generated.code))
        with capture_output() as captured:
            shell.run_cell_magic("analyze", "tips --out again", question)
        assert "approved before" in captured.stdout
        assert shell.user_ns["again"].success  # ran straight through, no panel
        shell.run_line_magic("analyze", "revoke")
        with capture_output():
            shell.run_cell_magic("analyze", "tips --out third", question)
        assert isinstance(shell.user_ns["third"], PendingResult)
    finally:
        shell.run_line_magic("unload_ext", "jupyter_analyst")
