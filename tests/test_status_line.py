"""The status line of %%analyze where it cannot be rewritten (a script, a pipe).

Its own module: it loads the extension into a fresh shell, which the shared test shell of
test_magic.py must not see.
"""

import pytest
from conftest import analyst_shell
from IPython.utils.capture import capture_output

pytestmark = pytest.mark.kernel


def test_the_status_names_each_step_once_where_it_cannot_be_rewritten(tips):
    """Printed to a pipe (not a terminal, not a notebook): one line per step, in order,
    with the isolation really in force, and never "idle"."""
    shell = analyst_shell(backend="local", model="offline")
    shell.user_ns["tips"] = tips
    try:
        with capture_output() as captured:
            shell.run_cell_magic("analyze", "tips --yes", "Show the distribution of total_bill")
    finally:
        shell.run_line_magic("unload_ext", "jupyter_analyst")
    steps = [line.split(" … ")[0] for line in captured.stdout.splitlines() if " … " in line]
    # A step shorter than one tick of the status (0.25 s) may not be printed at all.
    order = ["Generating code with offline templates", "Checking the code",
             "Starting the sandbox (local)", "Running the code in the local (bubblewrap) sandbox",
             "Writing insights"]
    assert "Starting the sandbox (local)" in steps  # a kernel takes seconds to start
    assert steps == sorted(set(steps), key=order.index)  # each once, in order, nothing else
    assert "Idle" not in captured.stdout and "idle" not in captured.stdout
    assert "✓ Done" in captured.stdout
