"""The notebook experience in a real browser: JupyterLab driven by Debian's chromium.

A private JupyterLab (127.0.0.1, random port, token, temporary root, settings and
kernelspec) opens a notebook with ``%%analyze tips``; the code runs in the Docker
sandbox. The test checks that the approval panel shows the code and the safety badge,
clicks Run and waits for the plot and the metrics table, and takes screenshots of the
cell (review, result, dark theme). A last cell uses Claude (the real SDK in the
notebook's kernel, talking to the local Messages API server of ``llm_server.py``): its
code fails, the fix is shown as a diff and runs only after a click on Run; the diff must
stay readable in both themes; a follow-up asked from its Done panel carries the earlier
step. Needs: ``apt-get install chromium``, ``pip install -e .[browser]``, a Docker
engine and the sandbox image (``jupyter-analyst build-image``).

Screenshots go to ``tests/artifacts/`` (ignored by git), so a test run leaves the
tree clean. To refresh the pictures in the docs, run it with
``JUPYTER_ANALYST_UPDATE_SCREENSHOTS=1``: then they are also copied to ``docs/images/``.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from conftest import docker_engine, require
from llm_server import MessagesServer, analysis, insights
from PIL import Image

from jupyter_analyst.sandbox.engine import LABEL, PID_LABEL

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
DOCS_IMAGES = ROOT / "docs" / "images"
UPDATE_DOCS = os.environ.get("JUPYTER_ANALYST_UPDATE_SCREENSHOTS") == "1"
QUESTION = "Show the distribution of total_bill"
# Claude's first answer fails (no column 'tips'); the fix it proposes uses 'tip'.
BROKEN = 'print(tips.groupby("day", observed=True)["tips"].mean())\n'
FIX = 'print(tips.groupby("day", observed=True)["tip"].mean().round(2))\n'
# The follow-up asked from the Done panel of the Claude cell.
FOLLOW_UP = "Now only for Sunday: how many bills?"
FOLLOW_UP_CODE = 'print("Sunday bills:", len(tips[tips["day"] == "Sun"]))\n'
RUN = re.compile(r"^\W*Run$")  # the Run button, not "Edit and run again" (icon glyphs lead)
BACKEND = "--backend docker"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_notebook(path: Path) -> None:
    cells = [
        "import os\nfrom jupyter_analyst.datasets import load\n"
        "tips = load('tips')\nprint('JPY_SESSION_NAME set:', 'JPY_SESSION_NAME' in os.environ)",
        "%load_ext jupyter_analyst",
        f"%%analyze tips --model offline {BACKEND}\n{QUESTION}",
        f"%%analyze tips --model offline {BACKEND} --out edited\nShow the distribution of tip",
        # Claude: the lab's environment has a key (and the test server's URL)
        f"%%analyze tips {BACKEND} --out repaired\nAverage tip per day",
    ]
    save_notebook(path, cells)


# A notebook as a document: results saved, reproduced by Restart & Run All, and the cells
# that a user stops, interrupts and edits with the keyboard.
DOCUMENT_CELLS = [
    "import os\nfrom jupyter_analyst.datasets import load\ntips = load('tips')\n"
    "print('kernel pid:', os.getpid())",
    "%load_ext jupyter_analyst",
    f"%%analyze tips --model offline {BACKEND} --out dist\n{QUESTION}",
    "print('rows:', dist.metrics['count'])",
    f"%%analyze tips --model offline {BACKEND} --out slow\nShow the distribution of tip",
]
SLEEP = "import time\nprint('sleeping')\ntime.sleep(60)\n"


def save_notebook(path: Path, cells: list[str]) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    nbformat.write(notebook, path)


def private_jupyter_dirs(base: Path) -> dict[str, str]:
    """Config, data, runtime and lab settings of our own, so nothing of the user's leaks in.

    The data dir holds a ``python3`` kernelspec for this interpreter (the venv), and
    the lab settings switch off the news and update notifications that would pop up
    over the notebook.
    """
    dirs = {name: base / name for name in ("config", "data", "runtime", "settings", "workspaces")}
    for path in dirs.values():
        path.mkdir()
    kernel = dirs["data"] / "kernels" / "python3"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python"}))
    notifications = dirs["settings"] / "@jupyterlab" / "apputils-extension"
    notifications.mkdir(parents=True)
    (notifications / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    return {"JUPYTER_CONFIG_DIR": str(dirs["config"]), "JUPYTER_DATA_DIR": str(dirs["data"]),
            "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
            "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
            "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"])}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    require(Path(CHROMIUM).exists(), "Debian's chromium (/usr/bin/chromium)")
    require(_importable("jupyterlab"), "JupyterLab (pip install jupyterlab)")
    require(_importable("playwright"), "Playwright (pip install playwright)")
    docker_engine()  # the code runs in the Docker sandbox
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    root.mkdir()
    write_notebook(root / "analyst.ipynb")
    # A folder of its own: approvals are kept per folder, and the first test approves the same
    # question on the same data.
    (root / "document").mkdir()
    save_notebook(root / "document" / "document.ipynb", DOCUMENT_CELLS)
    port, token = free_port(), secrets.token_hex(16)
    claude = MessagesServer().start()  # the last cell's code, its fix and the insights, in order
    claude.script(analysis(BROKEN), analysis(FIX, "Uses the tip column."),
                  insights("Sunday has the highest average tip."),
                  analysis(FOLLOW_UP_CODE, "Counts Sunday's rows."), insights("76 bills."))
    env = {**os.environ, **private_jupyter_dirs(base),
           "ANTHROPIC_API_KEY": "sk-ant-test-key", "ANTHROPIC_BASE_URL": claude.url,
           "NO_PROXY": "127.0.0.1,localhost", "JUPYTER_ANALYST_CACHE_DIR": str(base / "cache")}
    log = (base / "lab.log").open("w")
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
               f"--port={port}",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
               "--ServerApp.port_retries=0", "--LabApp.news_url=",
               "--ServerApp.allow_remote_access=False"]
    if os.geteuid() == 0:  # CI containers run as root; the server refuses that unless told
        command.append("--allow-root")
    server = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(url, token, server, base / "lab.log")
        yield {"url": url, "token": token, "root": root, "claude": claude}
    finally:
        stop(server)
        claude.stop()
        log.close()


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def wait_for_server(url: str, token: str, server: subprocess.Popen, log: Path,
                    limit: float = 90) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"JupyterLab exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer within {limit:.0f} s:\n{log.read_text()[-3000:]}")


def stop(server: subprocess.Popen) -> None:
    """Stop JupyterLab; it shuts its kernels down on SIGTERM."""
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=10)


@pytest.fixture
def page(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1100, "height": 2000})
            yield context.new_page()
        finally:
            browser.close()


def test_analyze_cell_shows_panel_and_runs_after_approval(lab, page):
    try:
        run_analysis_in_lab(lab, page)
    except BaseException:  # what the page looked like, for the CI log
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "failure.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"Screenshot of the failing page: {shot}")
        raise


def run_analysis_in_lab(lab, page) -> None:
    from playwright.sync_api import expect

    page.goto(f"{lab['url']}/lab/tree/analyst.ipynb?token={lab['token']}")
    notebook = page.locator(".jp-NotebookPanel .jp-Notebook")
    expect(notebook).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(timeout=60_000)

    # Run every cell; the %%analyze cell shows the panel and returns at once.
    page.locator(".lm-MenuBar-itemLabel").get_by_text("Run", exact=True).click()
    page.locator("[data-command='runmenu:run-all']").click()
    outputs = page.locator(".jp-OutputArea-output")
    expect(outputs.filter(has_text="JPY_SESSION_NAME set: True")).to_have_count(1, timeout=60_000)

    cells = page.locator(".jp-Notebook .jp-Cell")
    cell = cells.nth(2)  # the first %%analyze cell
    panel = cell.locator(".jupyter-analyst-panel")
    expect(panel).to_be_visible(timeout=60_000)
    code = panel.locator(".jupyter-analyst-code")
    expect(code).to_contain_text("column = 'total_bill'", timeout=60_000)
    expect(panel.locator(".jupyter-analyst-badge")).to_have_text("✓ risk: safe")
    run = panel.get_by_role("button", name=RUN)
    expect(run).to_be_enabled()
    assert contrast(panel.locator(".jupyter-analyst-badge")) >= 4.5
    screenshot(cell, "approval-panel-review.png")

    run.click()
    # The results are the cell's own outputs below the panel, not widget state.
    expect(cell.locator(".jp-OutputArea-output img")).to_have_count(1, timeout=120_000)
    expect(panel.locator("img")).to_have_count(0)
    metrics = cell.locator("table.jupyter-analyst-metrics")
    expect(metrics).to_contain_text("skewness")
    expect(metrics).to_contain_text("244")  # the row count of the tips data
    expect(panel.locator(".jupyter-analyst-status")).to_contain_text("Done")
    expect(code).to_be_hidden()  # the code section collapsed after Run
    expect(run).to_be_hidden()  # a finished panel offers only what follows a result
    expect(panel.get_by_role("button", name="Insert as cell")).to_be_visible()

    image = cell.locator(".jp-OutputArea-output img").first
    assert image.evaluate("img => img.naturalWidth") > 100  # a real decoded PNG, not a broken icon
    assert plot_background(image) > 240  # white, as drawn, in the light theme
    screenshot(cell, "approval-panel-result.png")
    code_header_works_by_keyboard(page, panel)

    edit_unsafe_code_then_run(page, cells.nth(3))
    repair_panel = cells.nth(4).locator(".jupyter-analyst-panel")
    approve_proposed_fix(lab["claude"], cells.nth(4), repair_panel)

    # The results are bound in the notebook namespace.
    cells.last.locator(".jp-InputPrompt").click()  # select the last cell, command mode
    page.keyboard.press("b")  # a new cell below it
    page.keyboard.press("Enter")
    page.keyboard.type("print(_analysis.success, _analysis.metrics['count'], edited.code)")
    page.keyboard.press("Shift+Enter")
    expect(outputs.filter(has_text="True 244 print(tips.shape)")).to_have_count(1, timeout=30_000)

    # Dark theme: the badge and the code must stay readable (theme variables, not fixed colours).
    page.locator(".lm-MenuBar-itemLabel").get_by_text("Settings", exact=True).click()
    page.locator(".lm-Menu-itemLabel").get_by_text("Theme", exact=True).hover()
    page.locator(".lm-Menu-itemLabel").get_by_text("JupyterLab Dark", exact=True).click()
    expect(page.locator("body[data-jp-theme-light='false']")).to_have_count(1, timeout=30_000)
    # The plot does not glare: its white background is shown dark, as the theme is.
    assert plot_background(image) < 80
    panel.get_by_role("button", name=re.compile("Generated code")).click()  # the closed section
    expect(code).to_be_visible()
    assert contrast(panel.locator(".jupyter-analyst-badge")) >= 4.5
    repair_panel.get_by_role("button", name=re.compile("Proposed fix · risk")).click()
    assert_diff_readable(repair_panel)
    page.set_viewport_size({"width": 1100, "height": 3200})  # the whole expanded cell
    screenshot(cell, "approval-panel-dark.png")

    # After Done: the code that ran goes into a new cell right below its %%analyze cell.
    count = cells.count()
    panel.get_by_role("button", name="Insert as cell").click()
    expect(cells).to_have_count(count + 1, timeout=10_000)
    expect(cells.nth(3).locator(".jp-InputArea-editor")).to_contain_text("column = 'total_bill'")
    expect(panel.locator(".jupyter-analyst-status")).to_contain_text("in a new cell below")
    ask_a_follow_up(page, lab["claude"], cells, cells.nth(5))


def plot_background(image) -> float:
    """The mean brightness (0-255) of the plot's top-left corner, as the page shows it."""
    with Image.open(io.BytesIO(image.screenshot())) as shot:
        corner = shot.convert("L").crop((0, 0, 12, 12))
        return sum(corner.get_flattened_data()) / (12 * 12)


def code_header_works_by_keyboard(page, panel) -> None:
    """The code section's header is a Tab stop whose aria-expanded follows Enter and Space."""
    from playwright.sync_api import expect

    header = panel.locator(".ja-section-header")
    code = panel.locator(".jupyter-analyst-code")
    expect(header).to_have_attribute("aria-expanded", "false")
    panel.get_by_role("button", name="Insert as cell").focus()
    page.keyboard.press("Shift+Tab")  # the previous Tab stop: the header
    expect(header).to_be_focused()
    page.keyboard.press("Enter")
    expect(header).to_have_attribute("aria-expanded", "true")
    expect(code).to_be_visible()
    page.keyboard.press("Space")
    expect(header).to_have_attribute("aria-expanded", "false")
    expect(code).to_be_hidden()
    expect(header).to_be_focused()  # no key reached the notebook (Enter there edits the cell)


def ask_a_follow_up(page, claude: MessagesServer, cells, cell) -> None:
    """Done panel → Ask a follow-up: a new %%analyze cell below, focused, in the same thread."""
    from playwright.sync_api import expect

    panel = cell.locator(".jupyter-analyst-panel")
    count = cells.count()
    panel.get_by_role("button", name="Ask a follow-up").click()
    expect(cells).to_have_count(count + 1, timeout=10_000)
    new = cell.locator("xpath=following-sibling::div[contains(@class, 'jp-Cell')][1]")
    expect(new.locator(".cm-content")).to_be_focused(timeout=10_000)
    page.keyboard.type(FOLLOW_UP)  # the caret waits on the empty question line
    expect(new.locator(".jp-InputArea-editor")).to_contain_text(
        f"%%analyze tips {BACKEND}{FOLLOW_UP}")  # two lines: no separator in the text
    assert new.locator(".cm-line").count() == 2
    page.keyboard.press("Shift+Enter")
    follow = new.locator(".jupyter-analyst-panel")
    expect(follow.get_by_role("button", name=RUN)).to_be_enabled(timeout=60_000)
    asked = claude.bodies()[-1]["messages"][0]["content"]
    assert isinstance(asked, str), asked
    # The follow-up carries the earlier step: its question and the code that ran (as JSON).
    conversation = asked.split("<conversation>")[1].split("</conversation>")[0]
    assert "Average tip per day" in conversation
    assert json.dumps(FIX.strip())[1:-1] in conversation
    assert FOLLOW_UP in asked.split("<question>")[1]
    follow.get_by_role("button", name=RUN).click()
    expect(follow.locator(".jupyter-analyst-status")).to_contain_text("Done", timeout=60_000)
    expect(new.locator(".jp-OutputArea-output").filter(
        has_text="Sunday bills: 76")).not_to_have_count(0)
    screenshot(new, "approval-panel-follow-up.png")


def screenshot(locator, name: str) -> None:
    """Into tests/artifacts/; also into docs/images/ when asked to update the docs."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    locator.screenshot(path=str(ARTIFACTS / name))
    if UPDATE_DOCS:
        shutil.copyfile(ARTIFACTS / name, DOCS_IMAGES / name)


def edit_unsafe_code_then_run(page, cell) -> None:
    """Edit: unsafe code cannot run; fixed code is checked again and runs as edited."""
    from playwright.sync_api import expect

    panel = cell.locator(".jupyter-analyst-panel")
    run, badge = panel.get_by_role("button", name=RUN), panel.locator(".jupyter-analyst-badge")
    expect(badge).to_have_text("✓ risk: safe", timeout=60_000)
    panel.get_by_role("button", name="Edit").click()
    editor = panel.locator(".jupyter-analyst-editor textarea")
    expect(editor).to_have_value(re.compile("column = 'tip'"))
    editor.fill("import os\nprint(os.getcwd())\n")
    expect(badge).to_have_text("✖ risk: high · cannot run")
    expect(panel.locator(".jupyter-analyst-safety")).to_contain_text("line 1")
    expect(run).to_be_disabled()
    status = panel.locator(".jupyter-analyst-status")
    before = status.text_content()
    editor.press("Control+Enter")  # refused code: the shortcut does nothing either
    page.wait_for_timeout(1500)
    assert status.text_content() == before and "Running" not in before
    expect(editor).to_have_value("import os\nprint(os.getcwd())\n")  # no newline typed
    editor.fill("print(tips.shape)\n")
    expect(badge).to_have_text("✓ risk: safe")
    expect(run).to_be_enabled()
    editor.press("Control+Enter")  # runs, as Run would
    expect(cell.locator(".jp-OutputArea-output").filter(has_text="(244, 7)")).not_to_have_count(
        0, timeout=60_000)
    expect(panel.locator(".jupyter-analyst-status")).to_contain_text("Done")


def approve_proposed_fix(claude: MessagesServer, cell, panel) -> None:
    """Claude's code fails; the fix is shown as a diff, and nothing runs until Run."""
    from playwright.sync_api import expect

    run = panel.get_by_role("button", name=RUN)
    expect(panel.locator(".jupyter-analyst-status")).to_contain_text("Claude", timeout=60_000)
    expect(run).to_be_enabled()
    run.click()
    diff = panel.locator(".jupyter-analyst-diff")
    expect(diff).to_be_visible(timeout=60_000)
    expect(panel.locator(".jupyter-analyst-status")).to_contain_text("review the proposed fix")
    expect(cell.locator(".jp-OutputArea-output").filter(has_text="KeyError")).not_to_have_count(0)
    expect(run).to_be_enabled()
    assert len(claude.requests) == 2  # the code and the fix; the fix has not run (no insights)
    assert "<previous_attempts>" in claude.bodies()[1]["messages"][0]["content"]
    assert_diff_readable(panel)
    screenshot(cell, "approval-panel-repair.png")

    run.click()
    expect(panel.locator(".jupyter-analyst-status")).to_contain_text("Done", timeout=60_000)
    outputs = cell.locator(".jp-OutputArea-output")
    expect(outputs.filter(has_text="3.26")).not_to_have_count(0)  # Sunday's mean tip, rounded
    expect(outputs.filter(has_text="2 attempts")).not_to_have_count(0)


def assert_diff_readable(panel) -> None:
    """The removed and the added line keep WCAG AA contrast against the theme's background."""
    from playwright.sync_api import expect

    diff = panel.locator(".jupyter-analyst-diff")
    expect(diff).to_be_visible()
    for text in ("-" + BROKEN.strip(), "+" + FIX.strip()):
        ratio = contrast(diff.locator("div", has_text=text).last)  # the line itself
        assert ratio >= 4.5, f"the {text[0]} line has a contrast of {ratio:.2f}"


CONTRAST_JS = r"""element => {
    // WCAG contrast between the text colour and the background behind it: translucent
    // layers (a tinted diff line) are blended over the first opaque one.
    const rgb = value => value.match(/[\d.]+/g).slice(0, 4).map(Number);
    const luminance = ([r, g, b]) => {
        const channel = c => {
            c /= 255;
            return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
        };
        return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
    };
    const layers = [];
    let node = element, background = [255, 255, 255];
    while (node && node.nodeType === 1) {
        const colour = rgb(getComputedStyle(node).backgroundColor);
        if (colour.length === 3 || colour[3] === 1) { background = colour.slice(0, 3); break; }
        if (colour[3] > 0) layers.push(colour);
        node = node.parentElement;
    }
    for (const [r, g, b, a] of layers.reverse()) {
        background = [r, g, b].map((c, i) => a * c + (1 - a) * background[i]);
    }
    const [l1, l2] = [luminance(rgb(getComputedStyle(element).color)), luminance(background)];
    return (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
}"""


def contrast(locator) -> float:
    return locator.evaluate(CONTRAST_JS)


def test_a_notebook_is_a_document(lab, page):
    """Run, save, nbconvert, reopen, Restart & Run All; the editor's keys; Stop; Interrupt."""
    try:
        use_the_notebook_as_a_document(lab, page)
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "failure-document.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"Screenshot of the failing page: {shot}")
        raise


def menu(page, top: str, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel").get_by_text(top, exact=True).click()
    page.locator(".lm-Menu-itemLabel").get_by_text(item, exact=True).click()


def open_notebook(page, lab, name: str):
    from playwright.sync_api import expect

    page.goto(f"{lab['url']}/lab/tree/{name}?reset&token={lab['token']}")  # no other tabs
    expect(page.locator(".jp-NotebookPanel .jp-Notebook")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(timeout=60_000)
    return page.locator(".jp-Notebook .jp-Cell")


def use_the_notebook_as_a_document(lab, page) -> None:
    from playwright.sync_api import expect

    path = lab["root"] / "document" / "document.ipynb"
    cells = open_notebook(page, lab, "document/document.ipynb")
    page.locator(".lm-MenuBar-itemLabel").get_by_text("Run", exact=True).click()
    page.locator("[data-command='runmenu:run-all']").click()
    analysis, reader, other = cells.nth(2), cells.nth(3), cells.nth(4)
    panel = analysis.locator(".jupyter-analyst-panel")
    expect(panel.get_by_role("button", name=RUN)).to_be_enabled(timeout=60_000)
    # Run All ran ahead: the result is a placeholder that says which cell is waiting.
    expect(reader.locator(".jp-OutputArea-output")).to_contain_text(
        "The analysis in cell [3] ('Show the distribution of total_bill') is waiting for your "
        "approval", timeout=30_000)
    other.locator(".jp-InputArea-editor").click()  # Run All stopped at the waiting result
    page.keyboard.press("Shift+Enter")
    panel.get_by_role("button", name=RUN).click()
    plot = analysis.locator(".jp-OutputArea-output img")
    expect(plot).to_have_count(1, timeout=120_000)

    editor_keys_stay_in_the_editor(page, other)
    stop_and_interrupt(page, other)
    pid = int(re.search(r"kernel pid: (\d+)", cells.nth(0).locator(
        ".jp-OutputArea-output").first.text_content()).group(1))
    restart_mid_run(page, other, pid)

    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    expect(page.get_by_text("Saving completed")).to_be_visible(timeout=30_000)
    saved = nbformat.read(path, as_version=4)
    status = re.compile(r"… \d+ s")  # a status line of work under way, frozen in the file
    for number, saved_cell in enumerate(saved.cells):
        for output in saved_cell.get("outputs", []):
            shown = output.get("text", "") + str(output.get("data", {}).get("text/plain", ""))
            assert not status.search(shown), (number, shown)
    mimes = {m for output in saved.cells[2].outputs for m in output.get("data", {})}
    assert "image/png" in mimes and "text/html" in mimes, mimes  # plot and metrics table
    html_file = lab["root"].parent / "document.html"
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", str(path),
                    "--output", str(html_file)], check=True, capture_output=True, timeout=120)
    converted = html_file.read_text()
    assert "data:image/png;base64" in converted and "jupyter-analyst-metrics" in converted

    # Reopened: the plot is in the document itself, not in a widget's memory.
    menu(page, "Kernel", "Shut Down Kernel")
    cells = open_notebook(page, lab, "document/document.ipynb")
    reopened = cells.nth(2).locator(".jp-OutputArea-output img")
    expect(reopened).to_have_count(1, timeout=30_000)
    assert reopened.evaluate("img => img.naturalWidth") > 100
    screenshot(cells.nth(2), "notebook-reopened.png")

    # Restart & Run All reproduces the approved analysis with no click.
    menu(page, "Kernel", "Restart Kernel and Run All Cells…")
    page.locator(".jp-Dialog .jp-mod-accept").click()
    expect(cells.nth(3).locator(".jp-OutputArea-output")).to_contain_text(
        "rows: 244", timeout=120_000)
    expect(cells.nth(2).locator(".jp-OutputArea-output").filter(
        has_text="approved before")).to_have_count(1)
    expect(cells.nth(2).locator(".jp-OutputArea-output img")).to_have_count(1)
    expect(cells.nth(2).locator(".jupyter-analyst-panel")).to_have_count(0)  # nothing to click


def editor_keys_stay_in_the_editor(page, cell) -> None:
    """Tab indents, letters are text (no command-mode shortcut), Escape just leaves."""
    from playwright.sync_api import expect

    panel = cell.locator(".jupyter-analyst-panel")
    expect(panel.get_by_role("button", name="Edit")).to_be_enabled(timeout=60_000)
    panel.get_by_role("button", name="Edit").click()
    editor = panel.locator(".jupyter-analyst-editor textarea")
    expect(editor).to_be_focused(timeout=10_000)
    editor.fill("for column in ['tip']:\nprint(column)")
    editor.press("End")  # the last line
    editor.press("Home")
    editor.press("Tab")
    editor.type("r = 1;")  # "r" in command mode would make the cell a raw cell
    expect(editor).to_have_value("for column in ['tip']:\n    r = 1;print(column)")
    assert "jp-CodeCell" in (cell.get_attribute("class") or "")
    gutter = panel.locator(".ja-gutter")
    expect(gutter).to_contain_text("2")  # line numbers, as the findings count them
    screenshot(cell, "approval-panel-editor.png")
    editor.press("Escape")
    expect(editor).not_to_be_focused()
    assert "jp-CodeCell" in (cell.get_attribute("class") or "")
    expect(editor).to_have_value("for column in ['tip']:\n    r = 1;print(column)")


def restart_mid_run(page, cell, pid: int) -> None:
    """Restart the notebook's kernel while code runs: the panel says the analysis ended, its
    buttons go, and the Docker container of the old kernel goes too."""
    import docker
    from playwright.sync_api import expect

    panel = cell.locator(".jupyter-analyst-panel")
    status = panel.locator(".jupyter-analyst-status")
    panel.get_by_role("button", name="Edit and run again").click()
    panel.locator(".jupyter-analyst-editor textarea").fill(SLEEP)
    panel.get_by_role("button", name=RUN).click()
    expect(status).to_contain_text("Running", timeout=60_000)
    client = docker.from_env()

    def running() -> list:
        return client.containers.list(filters={"label": [LABEL, f"{PID_LABEL}={pid}"],
                                               "status": "running"})

    assert running(), "the analysis runs in a container owned by the notebook's kernel"
    menu(page, "Kernel", "Restart Kernel…")
    page.locator(".jp-Dialog .jp-mod-accept").click()
    started = time.monotonic()
    expect(status).to_contain_text("The notebook's kernel restarted or stopped: this analysis "
                                   "ended before it finished", timeout=15_000)
    expect(status).not_to_contain_text("Running")
    expect(panel.get_by_role("button", name="Stop")).to_be_hidden()
    screenshot(panel, "panel-kernel-restarted.png")
    while running() and time.monotonic() - started < 30:
        time.sleep(0.5)
    assert not running(), "the old kernel's sandbox container is still running"
    print(f"restart mid-run: no container of kernel {pid} after "
          f"{time.monotonic() - started:.1f} s")
    expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(timeout=60_000)


def stop_and_interrupt(page, cell) -> None:
    """Stop ends sleeping code within seconds; so does the notebook's own Interrupt."""
    from playwright.sync_api import expect

    panel = cell.locator(".jupyter-analyst-panel")
    editor = panel.locator(".jupyter-analyst-editor textarea")
    status = panel.locator(".jupyter-analyst-status")
    for how in ("Stop", "Interrupt"):
        editor.fill(SLEEP)
        panel.get_by_role("button", name=RUN).click()
        expect(cell.locator(".jp-OutputArea-output").filter(has_text="sleeping")).not_to_have_count(
            0, timeout=60_000)
        started = time.monotonic()
        if how == "Stop":
            panel.get_by_role("button", name="Stop").click()
        else:
            page.locator("jp-button[data-command='notebook:interrupt-kernel']").click()
        expect(status).to_contain_text("Stopped", timeout=10_000)
        assert time.monotonic() - started < 8, how
        panel.get_by_role("button", name="Edit").click()
    editor.fill("print(tips.shape)\n")
    panel.get_by_role("button", name=RUN).click()  # the next run works on the same kernel
    expect(status).to_contain_text("Done", timeout=60_000)
    expect(cell.locator(".jp-OutputArea-output").filter(has_text="(244, 7)")).not_to_have_count(0)
