"""A real browser opens and runs every notebook in a real JupyterLab, with no internet.

What a learner does after ``make lab``: open a lesson, see its stored charts and
panels, Run All, and move a panel's slider. The tests start JupyterLab on a free
localhost port, with the settings ``make lab`` installs
(tools/jupyterlab_overrides.json: the kernel starts by itself, no news is fetched).
They drive Debian's ``/usr/bin/chromium`` through playwright and abort every request
that leaves localhost (and fail if there was one), so a chart or widget that needed a
CDN would not appear. JupyterLab 4's default windowing mode (``contentVisibility``)
keeps every cell in the page; a test scrolls an element into view before measuring it.

Two servers, one per fixture:

* ``lab`` serves a copy of notebooks/ (the masters), signed as ``make lab-master``
  signs them. For every master: its stored charts and panels show on first open;
  then the outputs are cleared, Run All runs every cell without an error, and every
  panel, moved (a slider or a dropdown), redraws from the live kernel.
* ``workspace_lab`` serves what ``make lab`` opens: the learner's ``workspace/``, made
  by ``eda-lab workspace`` and signed in the same (temporary) ``JUPYTER_DATA_DIR``
  the server reads. Every copy shows its stored charts and panels before anything
  runs (cheaper than the masters' check: no Run All); notebook 03's "Contents" link
  opens the contents page, and after Run All its panels still answer.

Screenshots are kept in ``browser-artifacts/`` (git-ignored) to look at after a run.
Skipped only when ``/usr/bin/chromium`` is missing (``.ci/run`` installs it with
apt-get). Never run ``playwright install``: it downloads a browser build.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "00_introduction.ipynb"
NOTEBOOKS = sorted(path.name for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
#: Screenshots of every browser test, kept after the run (git-ignored).
ARTIFACTS = ROOT / "browser-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
OVERRIDES = ROOT / "tools" / "jupyterlab_overrides.json"
DOCMANAGER = "@jupyterlab/docmanager-extension:plugin"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage"]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
SERVER_START_S = 120
RUN_ALL_MS = 240_000
IDLE_MS = 120_000
#: A panel's redraw (one simulation and one chart) after a control moved.
REDRAW_MS = 30_000
EMPTY_PROMPT = re.compile(r"^\[ ?\]:?$")
ERROR_OUTPUT = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
#: The root of a widget view in an output (JupyterLab sets no data-mime-type on it).
WIDGET_VIEW = ".jp-OutputArea-output > .jupyter-widgets"
#: A chart as JupyterLab draws image/svg+xml (an <img> of the SVG; an inline <svg> in
#: older versions) or as vega-embed draws it.
CHART = ".jp-RenderedSVG img, .jp-RenderedSVG svg, .vega-embed svg.marks"
#: A panel (eda_lab.widgets.Panel): a VBox of controls over an Output widget.
PANEL = ".widget-vbox:has(> .widget-output)"
#: What an untrusted notebook or a missing widget model shows instead of the picture.
TEXT_REPRS = ("alt.LayerChart(", "alt.Chart(", "VBox(children", "Error displaying widget",
              "Model not found")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's chromium: apt-get install -y chromium"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LabServer:
    """A JupyterLab subprocess; ``ready`` is set when it prints its URL."""

    def __init__(self, root_dir: Path, scratch: Path,
                 extra_env: dict[str, str] | None = None, *,
                 app_settings: Path | None = None) -> None:
        self.root = root_dir
        self.port = free_port()
        self.log: list[str] = []
        self.ready = threading.Event()
        if app_settings is None:
            app_settings = scratch / "app-settings"
            app_settings.mkdir()
            overrides = json.loads(OVERRIDES.read_text())
            # The test edits the notebook (clear, run): never save it.
            overrides.setdefault(DOCMANAGER, {})["autosave"] = False
            (app_settings / "overrides.json").write_text(json.dumps(overrides))
        env = {
            **os.environ,
            # Empty user settings and workspaces: only the overrides apply.
            "JUPYTERLAB_SETTINGS_DIR": str(scratch / "user-settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(scratch / "workspaces"),
            **(extra_env or {}),
        }
        command = [
            sys.executable, "-m", "jupyter", "lab", "--allow-root", "--no-browser",
            "--ServerApp.token=", "--ServerApp.password=", "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={root_dir}", f"--LabApp.app_settings_dir={app_settings}",
        ]
        self.process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            if f"127.0.0.1:{self.port}/lab" in line:
                self.ready.set()
        self.ready.set()  # the server exited: stop waiting

    def wait_until_listening(self, timeout: float) -> bool:
        """Wait for the URL line, then for the port: the server binds it just after."""
        deadline = time.monotonic() + timeout
        self.ready.wait(timeout=timeout)
        while self.process.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                threading.Event().wait(0.1)  # the io loop has not bound the port yet
        return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def shut_down_kernels(self) -> None:
        """Delete every session (and its kernel): the next test opens a fresh one.

        The server refuses a DELETE without its XSRF cookie echoed in a header, as a
        browser would send it; a GET of ``/lab`` hands out the cookie.
        """
        cookies = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))
        opener.open(f"{self.url}/lab").close()
        xsrf = {cookie.name: cookie.value for cookie in cookies}.get("_xsrf") or ""
        with opener.open(f"{self.url}/api/sessions") as response:
            sessions = json.load(response)
        for session in sessions:
            opener.open(urllib.request.Request(
                f"{self.url}/api/sessions/{session['id']}", method="DELETE",
                headers={"X-XSRFToken": xsrf})).close()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.reader.join(timeout=10)


def artifact(name: str) -> Path:
    """Where the screenshot ``name`` is kept: ``browser-artifacts/`` (git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name


@contextlib.contextmanager
def running_lab(root_dir: Path, scratch: Path, data_dir: Path,
                app_settings: Path | None = None) -> Iterator[LabServer]:
    """A JupyterLab on ``root_dir`` reading trust from ``data_dir``, stopped after."""
    server = LabServer(root_dir, scratch, {"JUPYTER_DATA_DIR": str(data_dir)},
                       app_settings=app_settings)
    try:
        if not server.wait_until_listening(SERVER_START_S):
            pytest.fail("JupyterLab did not start:\n" + "".join(server.log[-40:]))
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """JupyterLab on a copy of the masters, signed as ``make lab-master`` signs them."""
    from eda_lab.cli import trust_notebook

    scratch = tmp_path_factory.mktemp("lab")
    data_dir = scratch / "jupyter-data"
    # Serve a copy, so nothing the browser does can change the committed notebooks.
    shutil.copytree(ROOT / "notebooks", scratch / "notebooks")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_DATA_DIR", str(data_dir))  # sign where the server looks
        for name in NOTEBOOKS:
            trust_notebook(scratch / "notebooks" / name)
    # The settings `make lab-master` writes (tools/master_settings.py): autosave off.
    settings = scratch / "master-settings"
    subprocess.run([sys.executable, str(ROOT / "tools" / "master_settings.py"), str(settings)],
                   check=True)
    with running_lab(scratch / "notebooks", scratch, data_dir, settings) as server:
        yield server


def test_the_lab_applies_the_overrides(lab: LabServer) -> None:
    """JupyterLab serves tools/jupyterlab_overrides.json as the settings' defaults, and
    on the masters (``make lab-master``) with autosave off, so no run rewrites them."""
    def setting(plugin_id: str, key: str) -> object:
        with urllib.request.urlopen(f"{lab.url}/lab/api/settings/{plugin_id}") as response:
            answer = json.load(response)
        return answer["settings"].get(key, answer["schema"]["properties"][key]["default"])

    tracker = "@jupyterlab/notebook-extension:tracker"
    notification = "@jupyterlab/apputils-extension:notification"
    assert setting(tracker, "autoStartDefaultKernel") is True
    assert setting(notification, "fetchNews") == "false"
    assert setting(notification, "checkForUpdates") is False
    # The contents page (notebooks/README.md) opens rendered, with links to click.
    assert setting(DOCMANAGER, "defaultViewers") == {"markdown": "Markdown Preview"}
    assert setting(DOCMANAGER, "autosave") is False


def only_localhost(blocked: list[str]) -> Any:
    """A playwright route handler that aborts (and lists) every non-local request."""
    def route_handler(route: Any, request: Any) -> None:
        url = urlparse(request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.hostname not in LOCAL_HOSTS:
            blocked.append(request.url)
            route.abort()
        else:
            route.continue_()
    return route_handler


# -- driving a notebook page ------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium for the module's tests (each test gets its own fresh context)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                              args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@contextlib.contextmanager
def offline_page(browser: Any, url: str, screenshot: Path) -> Iterator[Any]:
    """A page on ``url`` in a fresh browser context that can reach only localhost.

    Every request to another host is aborted and listed; when the block ends without
    an error, the list must be empty (a CDN script or font would be a failure even
    if the page looked fine). The screenshot is taken last, whatever happened.
    """
    blocked: list[str] = []
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        context.route("**/*", only_localhost(blocked))
        page = context.new_page()
        page.set_default_timeout(60_000)
        try:
            page.goto(url)
            page.locator(".jp-Notebook .jp-Cell").first.wait_for()
            yield page
        finally:
            page.screenshot(path=str(screenshot), full_page=False)
    finally:
        context.close()
    assert not blocked, f"requests that left localhost: {blocked}"


@contextlib.contextmanager
def notebook_page(browser: Any, server: LabServer, name: str,
                  screenshot: str) -> Iterator[Any]:
    """:func:`offline_page` on notebook ``name``; its kernel is shut down after."""
    url = f"{server.url}/lab/tree/{name}?reset"
    try:
        with offline_page(browser, url, artifact(screenshot)) as page:
            yield page
    finally:
        server.shut_down_kernels()


def run_menu_command(page: Any, menu: str, command: str) -> None:
    """Click ``menu`` in the main menu bar, then the item that runs ``command``."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{menu}$")).click()
    page.locator(f"li.lm-Menu-item[data-command='{command}']").click()


def wait_until_idle(page: Any) -> None:
    """Wait for the status bar's ``| Idle``: the kernel started and has nothing to do."""
    from playwright.sync_api import expect

    expect(page.locator(".jp-StatusBar-Widget").get_by_text(
        re.compile(r"\|\s*Idle"))).to_be_visible(timeout=IDLE_MS)


def error_texts(scope: Any) -> list[str]:
    """The texts of the error (stderr or traceback) outputs inside ``scope``."""
    return [str(text) for text in scope.locator(ERROR_OUTPUT).all_inner_texts()]


#: Run All has finished (every code cell has a count) or stopped at an error.
RAN_OR_FAILED = f"""() => {{
    const ps = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
    const ran = ps.length > 0 && ps.every(p => /\\[\\d+\\]/.test(p.textContent));
    return ran || document.querySelector("{ERROR_OUTPUT}") !== null;
}}"""


def clear_and_run_all(page: Any) -> None:
    """Clear every output, then Run All from the menu, and check it ran clean.

    Clearing first makes "every cell has a count" mean "this Run All reached it" (a
    master's stored counts would match at once), and means every chart and panel
    seen afterwards was drawn by the live kernel.
    """
    from playwright.sync_api import expect

    wait_until_idle(page)  # the kernel started by itself: no "Select Kernel" dialog
    prompts = page.locator(".jp-CodeCell .jp-InputArea-prompt")
    run_menu_command(page, "Edit", "editmenu:clear-all")
    expect(prompts.first).to_have_text(EMPTY_PROMPT)
    expect(page.locator(CHART)).to_have_count(0)
    run_menu_command(page, "Run", "runmenu:run-all")
    page.wait_for_function(RAN_OR_FAILED, timeout=RUN_ALL_MS)
    assert not error_texts(page), "error output:\n" + "\n".join(error_texts(page))
    expect(prompts.last).to_have_text(re.compile(r"\[\d+\]"))
    wait_until_idle(page)


def stored_outputs(path: Path) -> tuple[int, int]:
    """How many SVG charts and widget views ``path``'s code cells store.

    Charts inside a panel's stored picture are not counted: they are in the
    notebook's widget state, and show inside the panel's view.
    """
    import nbformat

    outputs = [output for cell in nbformat.read(str(path), as_version=4).cells
               if cell.cell_type == "code" for output in cell.outputs]
    charts = sum("image/svg+xml" in output.get("data", {}) for output in outputs)
    views = sum("application/vnd.jupyter.widget-view+json" in output.get("data", {})
                for output in outputs)
    return charts, views


def check_charts_show(page: Any, minimum: int) -> None:
    """At least ``minimum`` charts are drawn, each on screen with a real size.

    An <img> of an SVG must also be decoded (a broken one has no natural width).
    """
    from playwright.sync_api import expect

    charts = page.locator(CHART)
    if minimum:
        expect(charts.nth(minimum - 1)).to_be_attached()
    for index in range(charts.count()):
        chart = charts.nth(index)
        chart.scroll_into_view_if_needed()
        expect(chart).to_be_visible()
        box = chart.bounding_box()
        assert box and box["width"] > 100 and box["height"] > 50, (index, box)
        if chart.evaluate("e => e.tagName") == "IMG":
            page.wait_for_function("e => e.complete && e.naturalWidth > 0",
                                   arg=chart.element_handle())


def check_stored_outputs_show(page: Any, path: Path) -> None:
    """Every chart and panel ``path`` stores is drawn, before any cell runs.

    A notebook JupyterLab does not trust shows a chart's or panel's text repr
    instead; a widget view whose model is missing from the stored widget state shows
    "Error displaying widget". Each chart must be on screen with a real size
    (:func:`check_charts_show`), each panel view its controls and stored picture.
    """
    from playwright.sync_api import expect

    stored_charts, stored_views = stored_outputs(path)
    for text in TEXT_REPRS:
        expect(page.get_by_text(text, exact=False)).to_have_count(0)
    check_charts_show(page, stored_charts)
    views = page.locator(WIDGET_VIEW)
    expect(views).to_have_count(stored_views)
    for index in range(stored_views):
        view = views.nth(index)
        view.scroll_into_view_if_needed()
        expect(view.locator(".widget-slider, .widget-dropdown").first).to_be_visible()
        expect(view.locator(".widget-output .jp-OutputArea-output").first).to_be_attached()


def move_controls(page: Any, panel: Any) -> None:
    """Move the panel's first slider to its far end, or every dropdown to another option.

    One dropdown may not be enough: in notebook 07, strict readers break on every
    schema change, so another change alone draws the same picture. Every dropdown
    moved to its last option (the first, if it is there already) draws a new one.
    """
    from playwright.sync_api import expect

    handles = panel.locator(".widget-slider .noUi-handle")
    if handles.count():
        handle = handles.first
        readout = panel.locator(".widget-slider .widget-readout").first
        before = readout.inner_text()
        at_max = handle.get_attribute("aria-valuenow") == handle.get_attribute(
            "aria-valuemax")
        handle.focus()
        page.keyboard.press("Home" if at_max else "End")  # the far end: a new picture
        expect(readout).not_to_have_text(before)
        return
    selects = panel.locator(".widget-dropdown select")
    assert selects.count(), "a panel with neither a slider nor a dropdown"
    for select in selects.all():
        chosen = select.evaluate("s => s.selectedIndex")
        last = select.evaluate("s => s.options.length - 1")
        if last > 0:
            select.select_option(index=0 if chosen == last else last)


def check_every_panel_answers(page: Any, minimum: int = 1) -> None:
    """Move a control of every panel: its output redraws, without an error.

    After Run All, a panel's view belongs to the live kernel, which re-runs the
    panel's callback (``Panel.redraw``) and sends the new picture.
    """
    panels = page.locator(PANEL)
    assert panels.count() >= minimum, f"{panels.count()} panels, expected {minimum}+"
    for index in range(panels.count()):
        panel = panels.nth(index)
        panel.scroll_into_view_if_needed()
        output = panel.locator(":scope > .widget-output")
        before = output.inner_html()
        move_controls(page, panel)
        page.wait_for_function("([element, before]) => element.innerHTML !== before",
                               arg=[output.element_handle(), before], timeout=REDRAW_MS)
        assert not error_texts(output), f"panel {index}: " + "\n".join(error_texts(output))


# -- the masters --------------------------------------------------------------------------
@pytest.mark.parametrize("name", NOTEBOOKS, ids=[name[:2] for name in NOTEBOOKS])
def test_a_master_shows_its_outputs_runs_all_and_every_panel_answers(
        browser: Any, lab: LabServer, name: str) -> None:
    """The instructor's view (``make lab-master``) of each lesson, end to end.

    First open: the stored charts and panels show. Then, outputs cleared, Run All
    draws the charts again from the live kernel, and every panel answers a control.
    """
    number = name[:2]
    stored_charts, stored_views = stored_outputs(lab.root / name)
    with notebook_page(browser, lab, name, f"master_{number}_after_run_all.png") as page:
        check_stored_outputs_show(page, lab.root / name)
        page.screenshot(path=str(artifact(f"master_{number}_first_open.png")))
        clear_and_run_all(page)
        check_charts_show(page, stored_charts)
        check_every_panel_answers(page, minimum=stored_views)


# -- the learner's workspace ------------------------------------------------------------
WORKSPACE_NOTEBOOK = "03_event_sourcing.ipynb"


@pytest.fixture(scope="module")
def workspace_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """JupyterLab on a workspace made as ``make lab`` makes it, trust store included."""
    from eda_lab.cli import find_notebooks, make_workspace

    scratch = tmp_path_factory.mktemp("workspace-lab")
    data_dir = scratch / "jupyter-data"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_DATA_DIR", str(data_dir))  # sign where the server looks
        make_workspace(find_notebooks(ROOT / "notebooks"), scratch / "workspace")
    with running_lab(scratch / "workspace", scratch, data_dir) as server:
        yield server


@pytest.mark.parametrize("name", NOTEBOOKS, ids=[name[:2] for name in NOTEBOOKS])
def test_a_workspace_copy_shows_its_stored_outputs_before_anything_runs(
        browser: Any, workspace_lab: LabServer, name: str) -> None:
    from playwright.sync_api import expect

    screenshot = f"workspace_{name[:2]}_first_open.png"
    with notebook_page(browser, workspace_lab, name, screenshot) as page:
        # Nothing has run: the exercise cells, cleared in the copy, have no count.
        prompts = page.locator(".jp-CodeCell .jp-InputArea-prompt")
        expect(prompts.filter(has_text=EMPTY_PROMPT).first).to_be_attached()
        expect(page.get_by_text("[PASS]", exact=False)).to_have_count(0)
        check_stored_outputs_show(page, workspace_lab.root / name)
        expect(prompts.filter(has_text=EMPTY_PROMPT).first).to_be_attached()


def test_contents_opens_the_contents_page_inside_the_lab(
        browser: Any, workspace_lab: LabServer) -> None:
    from playwright.sync_api import expect

    with notebook_page(browser, workspace_lab, WORKSPACE_NOTEBOOK,
                       "workspace_contents.png") as page:
        page.locator(".jp-RenderedMarkdown a", has_text="Contents").first.click()
        contents = page.locator(".jp-MarkdownViewer .jp-RenderedMarkdown")
        expect(contents.locator("table a").first).to_be_visible()
        expect(contents.locator("table a")).to_have_count(len(NOTEBOOKS))
        contents.locator("table a", has_text="04 · CQRS").click()
        expect(page.locator(".lm-TabBar-tab.lm-mod-current",
                            has_text="04_cqrs.ipynb")).to_be_visible()
        expect(page.locator(".jp-NotebookPanel:visible .jp-RenderedMarkdown h1").first
               ).to_contain_text("04 · CQRS")


def test_notebook_03s_time_travel_panel_answers_after_run_all(
        browser: Any, workspace_lab: LabServer) -> None:
    """In the learner's copy (exercise cells cleared), both panels answer after Run All."""
    with notebook_page(browser, workspace_lab, WORKSPACE_NOTEBOOK,
                       "workspace_03_after_run_all.png") as page:
        clear_and_run_all(page)
        # Every panel, moved after Run All, redraws (the store it reads is still open).
        check_every_panel_answers(page, minimum=2)


def test_the_html_pages_show_their_charts_and_request_nothing_off_their_folder(
        browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    from eda_lab import cli

    site = tmp_path / "site"
    assert cli.main(["html", "00", "01", "--output", str(site)]) == 0
    requested: list[str] = []
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.on("request", lambda request: requested.append(request.url))
        page.goto((site / "index.html").as_uri())
        page.get_by_role("link", name=re.compile("Introduction")).click()
        chart = page.locator("img[src^='data:image/svg+xml']").first
        chart.scroll_into_view_if_needed()
        expect(chart).to_be_visible()
        box = chart.bounding_box()
        assert box and box["width"] > 100 and box["height"] > 50, box
        expect(page.get_by_text("A static picture of the panel").first).to_be_attached()
        page.screenshot(path=str(artifact("html_00.png")))
    finally:
        context.close()
    off_folder = [url for url in requested if not url.startswith(("data:", site.as_uri()))]
    assert not off_folder, off_folder
    assert any(url.endswith("00_introduction.html") for url in requested)
