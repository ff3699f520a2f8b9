"""%%analyze in a real (headless) IPython shell: the notebook user's path, offline."""

import pandas as pd
import pytest
from conftest import analyst_shell, fresh_shell
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from jupyter_analyst.magic import follow_up_line, split_line, split_top_level

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def ip(tips):
    shell = analyst_shell(backend="local", model="offline")
    shell.user_ns.update(tips=tips, prices=tips[["total_bill"]], numbers=[1, 2, 3],
                         series=tips["tip"], empty=pd.DataFrame())
    yield shell
    fresh_shell()


def analyze(ip, line, cell):
    ip.user_ns.pop("_analysis", None)
    with capture_output() as captured:
        ip.run_cell_magic("analyze", line, cell)
    return captured


def test_distribution_of_total_bill_end_to_end(ip):
    captured = analyze(ip, "tips --yes", "Show the distribution of total_bill")
    result = ip.user_ns["_analysis"]
    assert result.success, result.error
    assert result.visualizations and result.visualizations[0]["format"] == "png"
    assert result.metrics
    mimes = {m for output in captured.outputs for m in output.data}
    assert "image/png" in mimes and "text/html" in mimes  # the plot and the metrics table
    assert result.backend


def test_out_name_and_expression_argument(ip, tips):
    analyze(ip, '--out sunday tips[tips.day == "Sun"]', "Show the distribution of total_bill")
    result = ip.user_ns["sunday"]
    assert result.success, result.error
    assert "tips" in result.code  # bound under the name the expression starts from
    assert result.metrics  # computed on the Sunday rows only
    assert "_analysis" not in ip.user_ns


def test_several_frames(ip):
    analyze(ip, "tips, prices", "Give me a summary of tips")
    assert ip.user_ns["_analysis"].success


@pytest.mark.parametrize("line, cell, problem", [
    ("tipz", "Show the distribution of total_bill", "Name 'tipz' is not defined"),
    ("numbers", "Show the distribution of x", "is a list, not a pandas DataFrame"),
    ("series", "Show the distribution of tip", "Series"),
    ("empty", "Show a summary", "is empty"),
    ("tips", "   ", "no question"),
    ("--new", "Show a summary", "No DataFrame given"),
    ("tips --out 1abc", "Show a summary", "not a valid variable name"),
    ("tips[", "Show a summary", "Could not evaluate"),
    ("tips --timeout -5", "Show a summary", "not a positive number"),
])
def test_bad_input_gets_a_clear_message_and_leaves_state_intact(ip, line, cell, problem):
    before = dict(ip.user_ns)
    captured = analyze(ip, line, cell)
    assert problem in captured.stderr
    assert "Traceback" not in captured.stderr + captured.stdout
    assert "_analysis" not in ip.user_ns
    assert ip.user_ns["tips"] is before["tips"] and ip.user_ns["numbers"] == [1, 2, 3]


def test_did_you_mean(ip):
    assert "Did you mean 'tips'?" in analyze(ip, "tipz", "Show a summary").stderr


def test_unknown_option_is_a_usage_error(ip):
    with pytest.raises(UsageError, match="unrecognized arguments"):
        ip.run_cell_magic("analyze", "tips --frobnicate", "Show a summary")


def test_question_it_cannot_answer_says_so_plainly(ip):
    captured = analyze(ip, "tips", "Write me a poem about the moon")
    shown = captured.stderr + captured.stdout + " ".join(
        str(value) for output in captured.outputs for value in output.data.values())
    assert "ANTHROPIC_API_KEY" in shown and "Traceback" not in shown
    result = ip.user_ns["_analysis"]
    assert not result.success and not result.code  # nothing was guessed, nothing ran


def test_help_lists_the_options(ip):
    doc = ip.find_cell_magic("analyze").__doc__
    for option in ("--yes", "--out", "--timeout", "--backend", "--model", "--type", "--privacy"):
        assert option in doc


@pytest.mark.parametrize("magic, line", [("line", ""), ("line", "help"), ("line", "--help"),
                                         ("line", "-h"), ("cell", "tips --help"),
                                         ("cell", "-h")])
def test_help_is_printed_when_asked_for(ip, magic, line):
    ip.user_ns.pop("_analysis", None)
    with capture_output() as captured:
        if magic == "line":
            ip.run_line_magic("analyze", line)
        else:
            ip.run_cell_magic("analyze", line, "Show a summary")
    shown = captured.stdout
    assert shown.startswith("%%analyze [--yes]") and "--model NAME" in shown
    assert "%analyze fix [--yes] | models" in shown and "``" not in shown
    assert "_analysis" not in ip.user_ns  # nothing was analysed


def test_a_cell_without_data_continues_with_the_previous_cells(ip, tips):
    analyze(ip, 'tips[tips.day == "Sun"] --yes --out first', "How many rows are there?")
    assert ip.user_ns["first"].metrics["rows"] == (tips.day == "Sun").sum()
    captured = analyze(ip, "--yes", "Show the distribution of tip")
    assert "Data: tips[tips.day == \"Sun\"], as in the previous %%analyze cell." in captured.stdout
    assert ip.user_ns["_analysis"].metrics["count"] == (tips.day == "Sun").sum()
    captured = analyze(ip, "--new --yes", "How many rows are there?")
    assert "No DataFrame given" in captured.stderr
    defined = captured.stderr.partition("DataFrames defined: ")[2]  # the shell's, in order
    assert "tips, " in defined and "prices" in defined
    assert "_analysis" not in ip.user_ns
    captured = analyze(ip, "--yes", "How many rows are there?")  # --new forgot the data too
    assert "No DataFrame given" in captured.stderr


def test_config_traits(ip):
    ip.run_line_magic("config", "Analyze.timeout = 77")
    magics = ip.magics_manager.registry["Analyze"]
    assert magics.timeout == 77
    ip.run_line_magic("config", "Analyze.timeout = 300")


def test_privacy_masking_and_caching_are_options_of_a_question_not_of_a_sandbox(ip):
    analyze(ip, "tips --yes", "Show a summary")
    magics = ip.magics_manager.registry["Analyze"]
    sandbox = magics.agent_for().sandbox
    for flags in ("--privacy schema", "--unmask", "--no-cache", "--privacy schema --no-cache"):
        analyze(ip, f"tips --yes {flags}", "Show a summary")
        assert ip.user_ns["_analysis"].success
    assert list(magics._agents) == ["local"] and magics.agent_for().sandbox is sandbox


def test_a_bug_of_ours_is_named_then_raised_for_tb_and_debug(ip, monkeypatch):
    magics = ip.magics_manager.registry["Analyze"]

    def broken(expression):
        raise RuntimeError("a planted bug")

    monkeypatch.setattr(magics, "resolve_frames", broken)
    with capture_output() as captured, pytest.raises(RuntimeError, match="a planted bug"):
        ip.run_cell_magic("analyze", "tips --yes", "Show a summary")
    assert "internal error: RuntimeError: a planted bug" in captured.stderr


def test_show_prompt_sends_nothing(ip):
    captured = analyze(ip, "tips --show-prompt", "Show the distribution of total_bill")
    assert "nothing is sent" in captured.stdout
    assert "_analysis" not in ip.user_ns


def test_unload_stops_the_kernel_and_removes_the_magic(ip):
    analyze(ip, "tips", "Show a summary")
    magics = ip.magics_manager.registry["Analyze"]
    roots = [agent.sandbox.root for agent in magics._agents.values() if agent.sandbox]
    assert roots and all(root.exists() for root in roots)
    ip.run_line_magic("unload_ext", "jupyter_analyst")
    assert "analyze" not in ip.magics_manager.magics["cell"]
    assert "Analyze" not in ip.magics_manager.registry
    assert not any(root.exists() for root in roots)
    ip.run_line_magic("load_ext", "jupyter_analyst")  # loads again cleanly, with defaults
    ip.run_line_magic("config", "Analyze.backend = 'local'")
    ip.run_line_magic("config", "Analyze.model = 'offline'")
    assert "analyze" in ip.magics_manager.magics["cell"]
    assert analyze(ip, "tips", "Show a summary") is not None and ip.user_ns["_analysis"].success


@pytest.mark.parametrize("line, options, expression", [
    ("df --yes", ["--yes"], "df"),
    ("--out r df[df.x > -1]", ["--out", "r"], "df[df.x > -1]"),
    ('df[df.region == "EU"] -y', ["-y"], 'df[df.region == "EU"]'),
    ("prices, holdings --timeout 5", ["--timeout", "5"], "prices, holdings"),
])
def test_split_line(line, options, expression):
    assert split_line(line) == (options, expression)


def test_split_top_level_respects_brackets_and_quotes():
    assert split_top_level("a, b[1, 2], f('x, y')", ",") == ["a", "b[1, 2]", "f('x, y')"]


@pytest.mark.parametrize("line, follow_up", [
    ("tips --model offline --backend docker --out dist", "%%analyze tips --model offline "
                                                         "--backend docker"),
    ("-o r df[df.x > -1] --new --insert -y", "%%analyze df[df.x > -1]"),
    ("prices, holdings --privacy schema --show-prompt", "%%analyze prices, holdings "
                                                        "--privacy schema"),
])
def test_a_follow_up_cell_keeps_the_data_and_choices_not_the_result_name(line, follow_up):
    """--out would overwrite the earlier result, --new would leave the conversation."""
    assert follow_up_line(line) == follow_up
