"""A real browser runs notebook 00 in a real JupyterLab, with no internet.

What a learner does after ``make lab``: open ``00_introduction.ipynb``, Run All, and
see a chart and a widget. The test starts JupyterLab on a free localhost port, on a
copy of notebooks/, with the settings ``make lab`` installs
(tools/jupyterlab_overrides.json: the kernel starts by itself, no news is fetched).
It drives Debian's ``/usr/bin/chromium`` through playwright and aborts every request
that leaves localhost, so a chart or widget that needed a CDN would not appear. It
clears the stored outputs first, so what it sees was drawn by the live kernel.

A second JupyterLab serves what ``make lab`` opens: the learner's ``workspace/``, made
by ``eda-lab workspace`` and signed in the same (temporary) ``JUPYTER_DATA_DIR`` the
server reads. There notebook 03 must show its stored charts and panels before
anything runs, its "Contents" link must open the contents page, and after Run All its
time-travel panel must still answer a slider.

Skipped only when ``/usr/bin/chromium`` is missing (``.ci/run`` installs it with
apt-get). Never run ``playwright install``: it downloads a browser build.
"""

from __future__ import annotations

import contextlib
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
CHROMIUM = Path("/usr/bin/chromium")
OVERRIDES = ROOT / "tools" / "jupyterlab_overrides.json"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage"]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
SERVER_START_S = 120
RUN_ALL_MS = 240_000

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
                 extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.log: list[str] = []
        self.ready = threading.Event()
        app_settings = scratch / "app-settings"
        app_settings.mkdir()
        overrides = json.loads(OVERRIDES.read_text())
        # The test edits the notebook (clear, run): never save it.
        overrides.setdefault("@jupyterlab/docmanager-extension:plugin", {})["autosave"] = False
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

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.reader.join(timeout=10)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    scratch = tmp_path_factory.mktemp("lab")
    # Serve a copy, so nothing the browser does can change the committed notebooks.
    shutil.copytree(ROOT / "notebooks", scratch / "notebooks")
    server = LabServer(scratch / "notebooks", scratch)
    try:
        if not server.wait_until_listening(SERVER_START_S):
            pytest.fail("JupyterLab did not start:\n" + "".join(server.log[-40:]))
        yield server
    finally:
        server.stop()


def test_the_lab_applies_the_overrides(lab: LabServer) -> None:
    """JupyterLab serves tools/jupyterlab_overrides.json as the settings' defaults."""
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
    assert setting("@jupyterlab/docmanager-extension:plugin", "defaultViewers") == {
        "markdown": "Markdown Preview"}


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


def test_notebook_00_runs_in_a_real_browser_offline(lab: LabServer, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    # Requests to any other host are refused: the page must work offline.
    with offline_page(f"{lab.url}/lab/tree/{NOTEBOOK}?reset",
                      tmp_path / "notebook_00.png") as page:
        # The kernel starts by itself (no "Select Kernel" dialog) and goes idle.
        expect(page.locator(".jp-StatusBar-Widget").get_by_text(
            re.compile(r"\|\s*Idle"))).to_be_visible(timeout=120_000)

        run_menu_command(page, "Edit", "editmenu:clear-all")
        prompts = page.locator(".jp-CodeCell .jp-InputArea-prompt")
        expect(prompts.first).to_have_text(re.compile(r"^\[ ?\]:?$"))
        expect(page.locator(".jp-RenderedSVG, .vega-embed")).to_have_count(0)

        run_menu_command(page, "Run", "runmenu:run-all")
        page.wait_for_function(
            """() => {
                const ps = [...document.querySelectorAll(
                    '.jp-CodeCell .jp-InputArea-prompt')];
                return ps.length > 0 && ps.every(p => /\\[\\d+\\]/.test(p.textContent));
            }""",
            timeout=RUN_ALL_MS,
        )
        expect(page.locator(".jp-StatusBar-Widget").get_by_text(
            re.compile(r"\|\s*Idle"))).to_be_visible(timeout=120_000)

        # JupyterLab draws an image/svg+xml output as an <img> of the SVG inside
        # .jp-RenderedSVG (an inline <svg> in older versions); vega-embed draws
        # svg.marks. Either must be on screen with a real size.
        chart = page.locator(".jp-RenderedSVG img, .jp-RenderedSVG svg, "
                             ".vega-embed svg.marks").first
        chart.scroll_into_view_if_needed()
        expect(chart).to_be_visible()
        box = chart.bounding_box()
        assert box and box["width"] > 100 and box["height"] > 50, box
        if chart.evaluate("e => e.tagName") == "IMG":
            assert chart.evaluate("e => e.complete && e.naturalWidth > 0")
        widget = page.locator(".widget-slider, .jupyter-widgets").first
        widget.scroll_into_view_if_needed()
        expect(widget).to_be_visible()
        errors = page.locator(".jp-OutputArea-output"
                              "[data-mime-type='application/vnd.jupyter.stderr']")
        assert errors.count() == 0, "error output:\n" + "\n".join(
            errors.all_inner_texts())


def run_menu_command(page, menu: str, command: str) -> None:
    """Click ``menu`` in the main menu bar, then the item that runs ``command``."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{menu}$")).click()
    page.locator(f"li.lm-Menu-item[data-command='{command}']").click()


# -- the learner's workspace ------------------------------------------------------------
WORKSPACE_NOTEBOOK = "03_event_sourcing.ipynb"
ALL_RAN = """() => {
    const ps = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
    return ps.length > 0 && ps.every(p => /\\[\\d+\\]/.test(p.textContent));
}"""


@pytest.fixture(scope="module")
def workspace_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """JupyterLab on a workspace made as ``make lab`` makes it, trust store included."""
    from eda_lab.cli import find_notebooks, make_workspace

    scratch = tmp_path_factory.mktemp("workspace-lab")
    data_dir = str(scratch / "jupyter-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_DATA_DIR", data_dir)  # sign where this server will look
        make_workspace(find_notebooks(ROOT / "notebooks"), scratch / "workspace")
    server = LabServer(scratch / "workspace", scratch, {"JUPYTER_DATA_DIR": data_dir})
    try:
        if not server.wait_until_listening(SERVER_START_S):
            pytest.fail("JupyterLab did not start:\n" + "".join(server.log[-40:]))
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def offline_page(url: str, screenshot: Path) -> Iterator[Any]:
    """A Chromium page on ``url`` that can reach nothing but localhost."""
    from playwright.sync_api import sync_playwright

    blocked: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                             args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
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
            browser.close()


def test_a_workspace_copy_shows_its_stored_chart_and_panel_before_anything_runs(
        workspace_lab: LabServer, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    url = f"{workspace_lab.url}/lab/tree/{WORKSPACE_NOTEBOOK}?reset"
    with offline_page(url, tmp_path / "workspace_03_first_open.png") as page:
        # Nothing has run: the exercise cells, cleared in the copy, have no count.
        empty = re.compile(r"^\[ ?\]:?$")
        prompts = page.locator(".jp-CodeCell .jp-InputArea-prompt")
        expect(prompts.filter(has_text=empty).first).to_be_attached()
        expect(page.get_by_text("[PASS]", exact=False)).to_have_count(0)
        chart = page.locator(".jp-RenderedSVG img, .jp-RenderedSVG svg").first
        chart.scroll_into_view_if_needed()
        expect(chart).to_be_visible()
        box = chart.bounding_box()
        assert box and box["width"] > 100 and box["height"] > 50, box
        # An untrusted notebook would show the chart's and the panel's reprs as text.
        for text in ("alt.LayerChart(", "alt.Chart(", "VBox(children"):
            expect(page.get_by_text(text, exact=False)).to_have_count(0)
        # The panels' stored views: a slider (disconnected until the kernel runs the cell).
        slider = page.locator(".widget-slider").first
        slider.scroll_into_view_if_needed()
        expect(slider).to_be_visible()
        expect(prompts.filter(has_text=empty).first).to_be_attached()


def test_contents_opens_the_contents_page_inside_the_lab(
        workspace_lab: LabServer, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    url = f"{workspace_lab.url}/lab/tree/{WORKSPACE_NOTEBOOK}?reset"
    with offline_page(url, tmp_path / "workspace_contents.png") as page:
        page.locator(".jp-RenderedMarkdown a", has_text="Contents").first.click()
        contents = page.locator(".jp-MarkdownViewer .jp-RenderedMarkdown")
        expect(contents.locator("table a").first).to_be_visible()
        expect(contents.locator("table a")).to_have_count(len(list(
            (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))))
        contents.locator("table a", has_text="04 · CQRS").click()
        expect(page.locator(".lm-TabBar-tab.lm-mod-current",
                            has_text="04_cqrs.ipynb")).to_be_visible()
        expect(page.locator(".jp-NotebookPanel:visible .jp-RenderedMarkdown h1").first
               ).to_contain_text("04 · CQRS")


def test_notebook_03s_time_travel_panel_answers_after_run_all(
        workspace_lab: LabServer, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    url = f"{workspace_lab.url}/lab/tree/{WORKSPACE_NOTEBOOK}?reset"
    with offline_page(url, tmp_path / "workspace_03_after_run_all.png") as page:
        expect(page.locator(".jp-StatusBar-Widget").get_by_text(
            re.compile(r"\|\s*Idle"))).to_be_visible(timeout=120_000)
        run_menu_command(page, "Run", "runmenu:run-all")
        page.wait_for_function(ALL_RAN, timeout=RUN_ALL_MS)
        expect(page.locator(".jp-StatusBar-Widget").get_by_text(
            re.compile(r"\|\s*Idle"))).to_be_visible(timeout=120_000)
        errors = page.locator(".jp-OutputArea-output"
                              "[data-mime-type='application/vnd.jupyter.stderr']")
        assert errors.count() == 0, "\n".join(errors.all_inner_texts())

        # Every panel, moved after Run All, redraws (the store it reads is still open).
        panels = page.locator(".widget-vbox").filter(has=page.locator(".widget-slider"))
        assert panels.count() >= 2
        for index in range(panels.count()):
            panel = panels.nth(index)
            panel.scroll_into_view_if_needed()
            output = panel.locator(".widget-output")
            readout = panel.locator(".widget-readout").first
            before_value, before_output = readout.inner_text(), output.inner_text()
            handle = panel.locator(".noUi-handle").first
            at_max = handle.get_attribute("aria-valuenow") == handle.get_attribute(
                "aria-valuemax")
            handle.focus()
            page.keyboard.press("Home" if at_max else "End")  # the far end: a new picture
            expect(readout).not_to_have_text(before_value)
            expect(output).not_to_have_text(before_output, timeout=30_000)
            assert output.locator("[data-mime-type='application/vnd.jupyter.stderr']"
                                  ).count() == 0, output.inner_text()


def test_the_html_pages_show_their_charts_and_request_nothing_off_their_folder(
        tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from eda_lab import cli

    site = tmp_path / "site"
    assert cli.main(["html", "00", "01", "--output", str(site)]) == 0
    requested: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                             args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("request", lambda request: requested.append(request.url))
            page.goto((site / "index.html").as_uri())
            page.get_by_role("link", name=re.compile("Introduction")).click()
            chart = page.locator("img[src^='data:image/svg+xml']").first
            chart.scroll_into_view_if_needed()
            expect(chart).to_be_visible()
            box = chart.bounding_box()
            assert box and box["width"] > 100 and box["height"] > 50, box
            expect(page.get_by_text("A static picture of the panel").first).to_be_attached()
            page.screenshot(path=str(tmp_path / "html_00.png"))
        finally:
            browser.close()
    off_folder = [url for url in requested if not url.startswith(("data:", site.as_uri()))]
    assert not off_folder, off_folder
    assert any(url.endswith("00_introduction.html") for url in requested)
