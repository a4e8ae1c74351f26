"""The notebooks' widgets in a real browser: JupyterLab + headless Chromium run notebooks 05 and 08 in quick
mode, press the sampling playground's Generate button and change the attention explorer's layer and head.

JupyterLab (not Voila) because it is what a learner opens, it is already installed with `jupyter`, and it
runs widgets exactly as the learner sees them. The server listens on 127.0.0.1 on a port it picks itself,
with a random token; news, update checks and the extension manager are off, and the browser refuses every
request that is not to that server. The notebooks run from a copy in a temporary directory.

Needs Debian's `chromium` (`apt-get install chromium`) and `pip install playwright` (its own browser
download is not used); skipped with the reason when either is missing. Screenshots of both widgets go to
pytest's temporary directory, or to $SHAKESPEARE_LM_SCREENSHOT_DIR (`notebooks/figures` refreshes the
committed ones).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).is_file():
    pytest.skip("no chromium browser: apt-get install chromium", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright missing: pip install playwright")

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
PLAYGROUND_NB = "05_scaling_up.ipynb"
EXPLORER_NB = "08_inside_the_gpt.ipynb"
START_S, RUN_S, WIDGET_S = 120, 240, 90  # generous: CI machines are slow and shared
PNG = b"\x89PNG\r\n\x1a\n"
SETTINGS = {  # JupyterLab user settings: every cell in the DOM, no news, no extension manager
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/extensionmanager-extension/plugin": {"enabled": False},
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory, shakespeare_path):
    """A JupyterLab server over a copy of the notebooks; yields (base_url, token)."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(NOTEBOOKS, root / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    for plugin, values in SETTINGS.items():
        path = root / "settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    token = secrets.token_hex(16)
    env = dict(os.environ, SHAKESPEARE_LM_QUICK="1", SHAKESPEARE_LM_DATA=str(shakespeare_path),
               JUPYTER_RUNTIME_DIR=str(root / "runtime"), JUPYTER_CONFIG_DIR=str(root / "config"),
               JUPYTER_DATA_DIR=str(root / "data"), IPYTHONDIR=str(root / "ipython"))
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", "--ServerApp.port=0",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         f"--LabApp.user_settings_dir={root / 'settings'}", f"--LabApp.workspaces_dir={root / 'workspaces'}",
         "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.extension_manager=readonly", "--LabApp.expose_app_in_browser=True"]
        + (["--allow-root"] if os.geteuid() == 0 else []),  # CI containers run as root
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        info = root / "runtime" / f"jpserver-{proc.pid}.json"  # written once the server listens
        deadline = time.monotonic() + START_S
        while not info.is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        if not info.is_file():
            pytest.fail(f"JupyterLab did not start:\n{(root / 'server.log').read_text()[-3000:]}")
        time.sleep(0.5)  # the file is complete once it parses
        yield f"http://127.0.0.1:{json.loads(info.read_text())['port']}", token
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # the server and the kernels it started
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, lab):
    """A fresh page that can reach only the JupyterLab server; asserts at the end nothing else was asked."""
    base, _ = lab
    context = browser.new_context(viewport={"width": 1280, "height": 1600}, device_scale_factor=1)
    outside = []

    def only_local(route):
        if route.request.url.startswith(base + "/"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    pg = context.new_page()
    pg.set_default_timeout(WIDGET_S * 1000)
    yield pg
    context.close()
    assert not outside, f"the page tried to reach outside the local server: {outside}"


@pytest.fixture(scope="module")
def screenshot_dir(tmp_path_factory) -> Path:
    where = os.environ.get("SHAKESPEARE_LM_SCREENSHOT_DIR")
    path = Path(where) if where else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


_RUN_STATE = """() => {
  const nb = window.jupyterapp.shell.currentWidget;
  const cells = nb.content.widgets.filter(c => c.model.type === 'code');
  const errors = [];
  for (const c of cells) {
    for (let i = 0; i < c.model.outputs.length; i++) {
      const o = c.model.outputs.get(i).toJSON();
      if (o.output_type === 'error') errors.push(`${o.ename}: ${o.evalue}`);
    }
  }
  return {done: window.__runAll !== undefined, ok: window.__runAll === true, errors,
          status: nb.sessionContext.session.kernel.status,
          run: cells.filter(c => c.model.executionCount !== null).length, cells: cells.length};
}"""


def run_notebook(page, lab, name: str) -> None:
    """Open notebook `name` in JupyterLab, clear its outputs, run every cell and wait for the kernel."""
    base, token = lab
    page.goto(f"{base}/lab/tree/notebooks/{name}?token={token}")
    page.wait_for_function(
        """name => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                     const k = w && w.context && w.context.path.endsWith(name) && w.sessionContext.session
                               && w.sessionContext.session.kernel;
                     return !!k && w.sessionContext.isReady && k.status === 'idle'; }""",
        arg=name, timeout=START_S * 1000)
    page.evaluate("""async () => {
        const app = window.jupyterapp;
        app.shell.collapseLeft();
        await app.commands.execute('notebook:clear-all-cell-outputs');
        app.commands.execute('notebook:run-all-cells').then(ok => { window.__runAll = ok; });
    }""")
    deadline = time.monotonic() + RUN_S
    while True:
        state = page.evaluate(_RUN_STATE)
        assert not state["errors"], f"{name} raised in the browser: {state['errors']}"
        if state["done"] and state["status"] == "idle":
            break
        assert time.monotonic() < deadline, f"{name} did not finish in {RUN_S} s: {state}"
        time.sleep(1)
    assert state["ok"] and state["run"] == state["cells"], f"{name} did not run every cell: {state}"


def widget_cell(page, has):
    """The output area of the one code cell whose output contains `has` (a live widget)."""
    outputs = page.locator(".jp-CodeCell .jp-OutputArea-output").filter(has=has)
    outputs.first.wait_for(state="visible")
    assert outputs.count() == 1
    return outputs.first


def save_screenshot(area, path: Path) -> None:
    """A screenshot of a widget's output area (exact pixels: a palette would smear the heatmap)."""
    box = area.bounding_box()
    assert box["width"] > 300 and box["height"] > 100, box  # the widget, not an empty box
    area.screenshot(path=path)
    assert path.read_bytes()[:8] == PNG


def wait_for(predicate, what: str, timeout: float = WIDGET_S):
    """Poll `predicate` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.25)
    return result


def test_sampling_playground_generates_in_the_browser(page, lab, screenshot_dir):
    run_notebook(page, lab, PLAYGROUND_NB)
    area = widget_cell(page, page.get_by_role("button", name="Generate"))
    button = area.get_by_role("button", name="Generate")
    seed = area.locator(".widget-text", has_text="seed").locator("input")
    prompt = area.locator("textarea").input_value()
    shown = area.locator(".widget-html pre")
    status = area.get_by_text(re.compile(r"^(generating\.\.\.|\d+ characters in .* s|error)$"))

    def text() -> str:
        return shown.inner_text() if shown.count() else ""

    def generate(seed_value: int) -> str:
        before = text()
        seed.fill(str(seed_value))
        seed.press("Tab")  # an IntText sends its value when it loses focus
        button.click()

        # generate() says "generating..." before the first piece of text, so new text together with a
        # "... characters in ... s" status and an enabled button is the finished sample
        def finished():
            state = status.inner_text() if status.count() else ""
            assert state != "error", f"the playground reported an error: {text()}"
            done = text() != before and "characters in" in state and button.is_enabled()
            return done and text()

        return wait_for(finished, f"Generate with seed {seed_value}")

    assert text() == ""  # nothing sampled until the button is pressed
    first = generate(101)
    assert first.startswith(prompt) and len(first) > len(prompt) + 100, first
    other = generate(202)
    assert other != first and other.startswith(prompt)
    assert generate(101) == first  # the seed control reaches the kernel: the same seed, the same text
    save_screenshot(area, screenshot_dir / "sampling_playground.png")


_IMAGE_BYTES = """async img => {
  const data = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
  return {bytes: Array.from(data), width: img.naturalWidth};
}"""


def test_attention_explorer_redraws_in_the_browser(page, lab, screenshot_dir):
    run_notebook(page, lab, EXPLORER_NB)
    area = widget_cell(page, page.locator("select option", has_text="all heads"))
    layer, head = area.locator("select").nth(0), area.locator("select").nth(1)
    image = area.locator(".widget-image")
    n_layer, n_head = layer.locator("option").count(), head.locator("option").count() - 1

    def picture() -> bytes:
        shown = image.evaluate(_IMAGE_BYTES)
        return bytes(shown["bytes"]) if shown["width"] > 0 else b""

    def heads_listed() -> list[int]:  # the heads of the "top attended" rows under the controls
        return [int(h) for h in re.findall(r"^head (\d+):", area.inner_text(), flags=re.M)]

    def choose(select, label: str, heads: list[int]):
        before = picture()
        select.select_option(label=label)

        def redrawn():
            now = picture()
            return now[:8] == PNG and now != before and heads_listed() == heads

        wait_for(redrawn, f"the heatmap after choosing {label!r}")

    def selected(select) -> str:
        return select.evaluate("s => s.options[s.selectedIndex].text")

    assert n_layer >= 2 and n_head >= 2
    wait_for(lambda: picture()[:8] == PNG and heads_listed(), "the explorer's first picture")
    start_layer = int(selected(layer).split()[-1])
    choose(layer, f"layer {(start_layer + 1) % n_layer}", heads_listed())
    choose(head, "all heads", list(range(n_head)))
    choose(head, "head 1", [1])
    choose(layer, f"layer {start_layer}", [1])
    save_screenshot(area, screenshot_dir / "attention_explorer.png")
