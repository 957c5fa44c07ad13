"""A person's view: real JupyterLab in headless Chromium runs the notebooks and moves the widgets.

Starts `jupyter lab` on 127.0.0.1 (free port, no token, news and update checks off) and Chromium with
its DevTools port, both as our own processes so they are stopped by process id whatever happens, and
drives the page through Playwright. Notebook kernels inherit CI=true: the fast mode. Readability is
checked in the light and the dark theme: widget texts at WCAG AA contrast, figures on their own opaque
background. Screenshots go to SR_LIB_SCREENSHOTS (default: <tmp>/sr_lib_browser). Skipped, with the
reason, where Chromium or the playwright package is missing (`apt-get install chromium`; never
`playwright install`, which downloads).
"""
import base64
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from PIL import Image

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = Path(os.environ.get("SR_LIB_SCREENSHOTS", Path(tempfile.gettempdir()) / "sr_lib_browser"))
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
LAB_CONFIG = """
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
c.ServerApp.token = ""
c.ServerApp.password = ""
c.ServerApp.open_browser = False
c.ServerApp.allow_root = True
c.LabApp.expose_app_in_browser = True  # window.jupyterapp: the test switches themes by command
"""

# no news or update toasts (nothing reaches for the network), no kernel-choice dialog, every cell rendered,
# and no autosave: the test must leave the committed, stripped notebooks untouched
USER_SETTINGS = {"@jupyterlab/docmanager-extension/plugin": {"autosave": False},
                 "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
                 "@jupyterlab/notebook-extension/tracker": {"autoStartDefaultKernel": True, "windowingMode": "none"}}


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_http(url: str, timeout: float, process: subprocess.Popen, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text()[-2000:] if log else ""
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before {url} answered\n{tail}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def _stop(process: subprocess.Popen) -> None:
    """Stop a process we started, and its children, by its process group id."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    if _chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); the browser test needs it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    notebooks_before = {p: p.read_bytes() for p in (ROOT / "notebooks").iterdir() if p.is_file()}
    work = tmp_path_factory.mktemp("lab")
    (work / "jupyter_lab_config.py").write_text(LAB_CONFIG)
    for plugin, settings in USER_SETTINGS.items():
        path = work / "settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    env = {**os.environ, "CI": "true", "JUPYTERLAB_SETTINGS_DIR": str(work / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(work / "workspaces")}
    env.pop("MPLBACKEND", None)
    lab_port, cdp_port = _free_port(), _free_port()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {SCREENSHOTS}")
    lab = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", f"--config={work / 'jupyter_lab_config.py'}",
                            "--ip=127.0.0.1", f"--port={lab_port}", f"--ServerApp.root_dir={ROOT}"],
                           env=env, stdout=subprocess.DEVNULL, stderr=open(work / "lab.log", "w"),
                           start_new_session=True)
    browser_process = subprocess.Popen([_chromium(), *CHROMIUM_FLAGS, f"--remote-debugging-port={cdp_port}",
                                        f"--user-data-dir={work / 'chromium'}", "about:blank"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for_http(f"http://127.0.0.1:{lab_port}/api", 120, lab, work / "lab.log")
        _wait_for_http(f"http://127.0.0.1:{cdp_port}/json/version", 60, browser_process)
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.connect_over_cdp(f"http://127.0.0.1:{cdp_port}")
            context = browser.contexts[0] if browser.contexts else browser.new_context()
            tab = context.new_page()
            tab.set_viewport_size({"width": 1500, "height": 1000})
            tab.lab_url = f"http://127.0.0.1:{lab_port}/lab/tree/notebooks"
            yield tab
            browser.close()
    finally:
        _stop(browser_process)
        _stop(lab)
    changed = [p.name for p, content in notebooks_before.items() if p.read_bytes() != content]
    assert not changed, f"the browser session modified {changed}"


# WCAG 2 contrast of every visible widget text against the first opaque background behind it
WIDGET_TEXT_CONTRAST_JS = """
(root) => {
  const rgba = (css) => { const m = css.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
                          const v = m[1].split(',').map(Number); return {r: v[0], g: v[1], b: v[2], a: v.length > 3 ? v[3] : 1}; };
  const background = (el) => { for (let e = el; e; e = e.parentElement) { const c = rgba(getComputedStyle(e).backgroundColor);
                                 if (c && c.a > 0.5) return c; } return {r: 255, g: 255, b: 255, a: 1}; };
  const luminance = (c) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
                             return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const rows = [];
  for (const el of root.querySelectorAll('.widget-label, .widget-readout, .widget-html-content, .widget-dropdown select, .widget-button')) {
    if (!el.offsetParent || !el.textContent.trim()) continue;
    const [a, b] = [luminance(rgba(getComputedStyle(el).color)), luminance(background(el))].sort((x, y) => y - x);
    rows.push({text: el.textContent.trim().slice(0, 50), contrast: (a + 0.05) / (b + 0.05)});
  }
  return rows;
}
"""


def _set_theme(page, theme: str) -> None:
    page.evaluate("(theme) => window.jupyterapp.commands.execute('apputils:change-theme', {theme})", theme)
    page.wait_for_function("(theme) => document.body.dataset.jpThemeName === theme", arg=theme, timeout=30_000)
    page.wait_for_timeout(1000)


def _assert_widget_text_contrast(page, theme: str) -> None:
    """Every widget text reaches WCAG AA contrast (4.5:1) in this theme."""
    rows = _active(page).evaluate(WIDGET_TEXT_CONTRAST_JS)
    assert rows, "no widget text found"
    faint = [r for r in rows if r["contrast"] < 4.5]
    assert not faint, f"{theme}: widget texts below 4.5:1 contrast: {faint}"
    print(f"{theme}: {len(rows)} widget texts, lowest contrast {min(r['contrast'] for r in rows):.1f}:1")


def _assert_figures_opaque(page) -> int:
    """Matplotlib figures carry their own opaque background, so dark text on them reads in any theme."""
    sources = [s for s in _active(page).locator(".jp-RenderedImage img").evaluate_all("els => els.map(e => e.src)")
               if s.startswith("data:image/png;base64,")]
    for src in sources:
        alpha = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGBA").getchannel("A")
        assert alpha.getextrema()[0] == 255, "a figure has transparent pixels: its text would vanish on a dark page"
    return len(sources)


def _active(page):
    """The notebook in the current tab (JupyterLab keeps earlier tabs open, hidden)."""
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")


def _open_and_run_all(page, notebook: str, timeout_s: int) -> None:
    page.goto(f"{page.lab_url}/{notebook}?reset")  # a fresh workspace: only this notebook open
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
    select_kernel = page.locator(".jp-Dialog button:has-text('Select')")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the kernel is up and no dialog asks which one to start
        if select_kernel.count():
            select_kernel.first.click()
        elif any("| Idle" in text for text in page.locator(".jp-StatusBar-Widget").all_inner_texts()):
            break
        time.sleep(1)
    else:
        raise TimeoutError(f"the kernel of {notebook} did not start")
    # the notebook's own toolbar button, so the command cannot reach another tab's notebook
    _active(page).locator("[data-command='notebook:restart-run-all']").first.click()
    page.locator(".jp-Dialog .jp-mod-accept").click()
    # Run All stops at an error, so the last code cell gets an execution count only when every cell ran
    last_prompt = _active(page).locator(".jp-CodeCell .jp-InputPrompt").last
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        idle = any("| Idle" in text for text in page.locator(".jp-StatusBar-Widget").all_inner_texts())
        if idle and re.fullmatch(r"\[\d+\]:", last_prompt.inner_text().strip()):
            return
        time.sleep(2)
    page.screenshot(path=SCREENSHOTS / f"{notebook}-timeout.png")
    raise TimeoutError(f"{notebook} did not run to its last cell in {timeout_s} s (see the screenshot)")


def _slider(page, description: str):
    return _active(page).locator(f".widget-slider:has(.widget-label:text-is('{description}'))").first


def _set_slider_by_keyboard(page, description: str, presses: int, key: str) -> None:
    handle = _slider(page, description).locator(".noUi-handle")
    handle.scroll_into_view_if_needed()
    handle.focus()
    for _ in range(presses):
        page.keyboard.press(key)
    page.wait_for_timeout(500)


def _wait_for_change(locator, before: bytes, timeout_s: float = 60) -> bytes:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = locator.screenshot()
        if now != before:
            return now
        time.sleep(1)
    raise AssertionError("the picture did not change")


@pytest.mark.slow
def test_comparison_notebook_widgets_respond_in_the_browser(page):
    _open_and_run_all(page, "05_comparison.ipynb", timeout_s=600)
    page.screenshot(path=SCREENSHOTS / "05-after-run.png", full_page=False)

    flow_image = _active(page).locator(".widget-vbox:has(> .widget-html:has-text('flow sample')) img").first
    flow_image.scroll_into_view_if_needed()
    stats = _active(page).locator(".widget-html:has-text('LR-PSNR')").first
    before_stats = stats.inner_text()
    page.screenshot(path=SCREENSHOTS / "05-scrubber-before.png")
    before = flow_image.screenshot()
    _set_slider_by_keyboard(page, "latent temperature T (std of z)", 8, "ArrowLeft")  # 0.8 -> 0.4, one update per key
    deadline = time.monotonic() + 120
    while "T = 0.40" not in stats.inner_text() and time.monotonic() < deadline:
        time.sleep(1)
    assert "T = 0.40" in stats.inner_text() and stats.inner_text() != before_stats
    _wait_for_change(flow_image, before)
    page.screenshot(path=SCREENSHOTS / "05-scrubber-after.png")

    crops = _active(page).locator(".widget-hbox:has(> .widget-vbox > .widget-html:has-text('reference'))").first
    crops.scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "05-crops-before.png")
    before = crops.screenshot()
    _set_slider_by_keyboard(page, "left (px)", 30, "ArrowRight")
    _wait_for_change(crops, before)
    page.screenshot(path=SCREENSHOTS / "05-crops-after.png")

    # a student uploads a photo of their own: a bundled one, saved as a file the way a phone would
    import skimage.data
    photo = SCREENSHOTS / "upload-coffee.jpg"
    Image.fromarray(skimage.data.coffee()).save(photo, quality=90)
    status = _active(page).locator(".widget-html:has-text('No ground truth exists')").first
    status.scroll_into_view_if_needed()
    outputs = _active(page).locator(".widget-hbox:has(> .widget-vbox > .widget-html:has-text('your photo (LR)'))").first
    before = outputs.screenshot()
    with page.expect_file_chooser() as chooser:  # the widget's file input lives outside the page's DOM
        _active(page).locator(".widget-upload:has-text('your photo')").first.click()
    chooser.value.set_files(str(photo))
    deadline = time.monotonic() + 120
    while "upload-coffee.jpg" not in status.inner_text() and time.monotonic() < deadline:
        time.sleep(1)
    assert "upload-coffee.jpg: 600x400 px, its central 96x96 px used" in status.inner_text()
    _wait_for_change(outputs, before)
    outputs.scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "05-upload-after.png")

    for theme, name in (("JupyterLab Light", "light"), ("JupyterLab Dark", "dark")):
        _set_theme(page, theme)
        _assert_widget_text_contrast(page, theme)
        assert _assert_figures_opaque(page) >= 2
        _active(page).locator(".jp-RenderedImage img").first.scroll_into_view_if_needed()
        page.screenshot(path=SCREENSHOTS / f"05-figures-{name}.png")
        crops.scroll_into_view_if_needed()
        page.screenshot(path=SCREENSHOTS / f"05-widgets-{name}.png")
    _set_theme(page, "JupyterLab Light")


WRONG_INVERSE = """def coupling_inverse(v2, s, t):
    return (v2 - t) / torch.exp(s) / torch.exp(s), -s.flatten(1).sum(1)


print(check_coupling_inverse(coupling_inverse))"""


def test_a_student_notebook_stops_at_its_exercise_and_the_checker_names_a_wrong_answer(page):
    from sr_lib.student import write_student_versions
    folder = ROOT / "build" / "browser-student"
    write_student_versions(folder)
    try:
        page.goto(page.lab_url.replace("/tree/notebooks", "/tree/build/browser-student/01_coupling_jacobian.ipynb")
                  + "?reset")
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
        deadline = time.monotonic() + 120
        while not any("| Idle" in t for t in page.locator(".jp-StatusBar-Widget").all_inner_texts()):
            assert time.monotonic() < deadline, "the kernel did not start"
            time.sleep(1)
        _active(page).locator("[data-command='notebook:restart-run-all']").first.click()
        page.locator(".jp-Dialog .jp-mod-accept").click()
        stop = _active(page).locator(".jp-OutputArea-output:has-text('NotImplementedError')").first
        stop.wait_for(timeout=120_000)
        assert "exercise 1.1:" in stop.inner_text()  # Run All stopped at the first exercise, with its task
        stop.scroll_into_view_if_needed()
        page.screenshot(path=SCREENSHOTS / "student-01-stopped.png")

        cell = _active(page).locator(".jp-CodeCell:has-text('def coupling_inverse')").first
        cell.locator(".cm-content").click()
        page.keyboard.press("Control+a")
        page.keyboard.insert_text(WRONG_INVERSE)  # typed as a student would paste it (no auto-indent)
        page.keyboard.press("Shift+Enter")
        message = cell.locator(".jp-OutputArea-output:has-text('Not yet:')").first
        message.wait_for(timeout=60_000)
        assert "did you divide by exp(s) twice?" in message.inner_text()
        assert "Traceback" not in message.inner_text()  # one sentence, not the checker's code
        cell.scroll_into_view_if_needed()
        page.screenshot(path=SCREENSHOTS / "student-01-checker.png")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_jacobian_notebook_renders_its_figures(page):
    _open_and_run_all(page, "01_coupling_jacobian.ipynb", timeout_s=300)
    figures = _active(page).locator(".jp-RenderedImage img")
    assert figures.count() >= 2 and _assert_figures_opaque(page) == figures.count()
    figures.first.scroll_into_view_if_needed()
    assert figures.first.bounding_box()["width"] > 300
    page.screenshot(path=SCREENSHOTS / "01-jacobian.png")


def test_paired_script_opens_as_the_same_notebook(page):
    """Binder users may open the .py twin: jupytext shows it as the same notebook, cell for cell."""
    page.goto(f"{page.lab_url}?reset")
    page.wait_for_selector(".jp-DirListing-item", timeout=120_000)
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:open', "
                  "{path: 'notebooks/02_invertibility.py', factory: 'Jupytext Notebook'})")
    cells = _active(page).locator(".jp-Cell")
    cells.first.wait_for(timeout=60_000)
    expected = nbformat.read(ROOT / "notebooks/02_invertibility.ipynb", as_version=4).cells
    assert cells.count() == len(expected)
    assert _active(page).locator(".jp-MarkdownCell h1").first.inner_text().startswith("02 ·")
    page.screenshot(path=SCREENSHOTS / "02-py-as-notebook.png")
