"""A real browser runs notebook 00 in a real JupyterLab, with no internet.

What a learner does after ``make lab``: open ``00_introduction.ipynb``, Run All, and
see a chart and a widget. The test starts JupyterLab on a free localhost port, on a
copy of notebooks/, with the settings ``make lab`` installs
(tools/jupyterlab_overrides.json: the kernel starts by itself, no news is fetched).
It drives Debian's ``/usr/bin/chromium`` through playwright and aborts every request
that leaves localhost, so a chart or widget that needed a CDN would not appear. It
clears the stored outputs first, so what it sees was drawn by the live kernel.

Skipped only when ``/usr/bin/chromium`` is missing (``.ci/run`` installs it with
apt-get). Never run ``playwright install``: it downloads a browser build.
"""

from __future__ import annotations

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

    def __init__(self, root_dir: Path, scratch: Path) -> None:
        self.port = free_port()
        self.log: list[str] = []
        self.ready = threading.Event()
        app_settings = scratch / "app-settings"
        app_settings.mkdir()
        overrides = json.loads(OVERRIDES.read_text())
        # The test edits the notebook (clear, run): never save it.
        overrides["@jupyterlab/docmanager-extension:plugin"] = {"autosave": False}
        (app_settings / "overrides.json").write_text(json.dumps(overrides))
        env = {
            **os.environ,
            # Empty user settings and workspaces: only the overrides apply.
            "JUPYTERLAB_SETTINGS_DIR": str(scratch / "user-settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(scratch / "workspaces"),
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


def test_notebook_00_runs_in_a_real_browser_offline(lab: LabServer, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    blocked: list[str] = []

    def only_localhost(route, request) -> None:
        url = urlparse(request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.hostname not in LOCAL_HOSTS:
            blocked.append(request.url)
            route.abort()
        else:
            route.continue_()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                             args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.route("**/*", only_localhost)
            page = context.new_page()
            page.set_default_timeout(60_000)
            try:
                page.goto(f"{lab.url}/lab/tree/{NOTEBOOK}?reset")
                page.locator(".jp-Notebook .jp-Cell").first.wait_for()
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
            finally:
                page.screenshot(path=str(tmp_path / "notebook_00.png"), full_page=False)
        finally:
            browser.close()
    # Requests to the internet were refused and the page still worked: offline.
    print(f"blocked {len(blocked)} non-local requests: {sorted(set(blocked))[:5]}")


def run_menu_command(page, menu: str, command: str) -> None:
    """Click ``menu`` in the main menu bar, then the item that runs ``command``."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{menu}$")).click()
    page.locator(f"li.lm-Menu-item[data-command='{command}']").click()
