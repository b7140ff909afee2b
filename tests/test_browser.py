"""The course as a learner sees it: JupyterLab in a real (headless) Chromium.

One JupyterLab for the module, started the way ``course lab`` starts it (its workspace copies and
options) on a free port, with its own progress file, workspace (a copy of the
shipped notebooks) and Jupyter folders. Notebooks 04 and 05 are opened as shipped and run with
Run > Run All Cells; then the widgets are used as a learner would. Skips where Chromium, its driver
or selenium is missing (CI installs Debian's ``chromium`` and ``chromium-driver``).

Notes on driving JupyterLab 4: it renders off-screen outputs lazily, so checks scroll through the
notebook and read ``textContent``; a run is finished when no prompt shows ``[*]`` and the kernel
is idle; ``?reset`` in the URL stops restored tabs from starting extra kernels.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from course.lab import lab_command, prepare_workspace
from course.labsettings import OVERRIDES
from course.teach.kernelenv import kernel_env

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(os.name != "posix", reason="uses process groups for clean-up")]

ROOT = Path(__file__).resolve().parent.parent
#: Functional bounds on a busy 2-core machine, not speed claims: a page, a whole notebook run.
PAGE_WAIT = 120.0
RUN_ALL_WAIT = 600.0
CHROME_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1400,1000"]


def _find_browser() -> tuple[str, str]:
    """Chromium and its driver (Debian's paths first), or skip saying what to install."""
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")
    browser = next((p for p in ("/usr/bin/chromium", shutil.which("chromium"),
                                shutil.which("chromium-browser"), shutil.which("google-chrome"))
                    if p and os.access(p, os.X_OK)), None)
    driver = next((p for p in ("/usr/bin/chromedriver", shutil.which("chromedriver"))
                   if p and os.access(p, os.X_OK)), None)
    if browser is None or driver is None:
        pytest.skip("no Chromium and chromedriver here (Debian: apt install chromium "
                    "chromium-driver); the browser tests need both")
    return browser, driver


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], Any], what: str, timeout: float = PAGE_WAIT,
             poll: float = 0.5) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception as exc:  # noqa: BLE001 - the page is still changing: try again
            error, value = exc, None
        if value:
            return value
        time.sleep(poll)
    pytest.fail(f"timed out waiting for {what}" + (f" (last error: {error})" if error else ""))


class Lab:
    """A JupyterLab server started as the course starts it, in folders of its own."""

    def __init__(self, base: Path) -> None:
        self.base = base
        env = kernel_env(base / "kernel", course_root=ROOT)
        # The learner's workspace, filled as `course lab` fills it (copies of the shipped
        # notebooks, fitted to this machine's kernel; a start page naming the progress file
        # the lab's kernels use), and the lab started with its options.
        before = os.environ.get("COURSE_PROGRESS_FILE")
        os.environ["COURSE_PROGRESS_FILE"] = env["COURSE_PROGRESS_FILE"]
        try:
            self.workspace = prepare_workspace(base / "workspace").workspace
        finally:
            if before is None:
                os.environ.pop("COURSE_PROGRESS_FILE")
            else:
                os.environ["COURSE_PROGRESS_FILE"] = before
        self.port, self.token = _free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        for name, folder in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                             ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython"),
                             ("MPLCONFIGDIR", "matplotlib")):
            env[name] = str(base / folder)
        self.progress_file = Path(env["COURSE_PROGRESS_FILE"])
        command = lab_command(self.workspace, port=self.port, token=self.token, no_browser=True)
        self.log = base / "lab.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(command, cwd=base, env=env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self._answers, "JupyterLab to answer")

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"JupyterLab exited with {self.proc.returncode}:\n"
                        f"{self.log.read_text()[-3000:]}")
        try:
            self.api("GET", "/api/status")
            return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def api(self, method: str, path: str) -> Any:
        """Call the server's REST API; returns the decoded JSON (None when empty)."""
        request = urllib.request.Request(self.url + path, method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shut_down_kernels(self) -> None:
        """End every session and its kernel, as quitting JupyterLab would."""
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")
        wait_for(lambda: not self.api("GET", "/api/kernels"), "the kernels to shut down")

    def progress(self) -> dict:
        return json.loads(self.progress_file.read_text()) if self.progress_file.exists() else {}

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the server and its kernels
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=60)


class Page:
    """The browser on the JupyterLab page, with the few moves a learner makes."""

    def __init__(self, driver: Any, lab: Lab) -> None:
        self.driver, self.lab = driver, lab
        self.console: list[dict] = []  # every browser console entry, kept for the last check

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def collect_console(self) -> list[dict]:
        self.console += self.driver.get_log("browser")  # get_log empties the browser's buffer
        return self.console

    def open(self, notebook: str) -> None:
        """Open ``notebook`` alone (``?reset``) and wait until its kernel is idle."""
        self.driver.get(f"{self.lab.url}/lab/tree/{notebook}?reset&token={self.lab.token}")
        wait_for(lambda: self.js("return document.querySelectorAll("
                                 "'.jp-NotebookPanel .jp-Cell').length > 5"), f"{notebook} to load")
        self.wait_idle()
        self.scroll_through()  # lazily rendered outputs appear
        self.collect_console()

    def wait_idle(self, timeout: float = PAGE_WAIT) -> None:
        def idle() -> bool:
            prompts = self.js("return [...document.querySelectorAll("
                              "'.jp-NotebookPanel .jp-InputArea-prompt')].map(p => p.textContent)")
            status = self.js("return document.querySelector("
                             "'.jp-Notebook-ExecutionIndicator')?.dataset.status")
            return status == "idle" and not any("*" in prompt for prompt in prompts)
        time.sleep(1)  # let a just-sent command reach the kernel before asking if it is idle
        wait_for(idle, "the kernel to be idle with no cell running", timeout=timeout, poll=1)

    def _scroll(self, script: str) -> list[float]:
        return self.js("const o = document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer');"
                       + script + "return [o.scrollTop, o.scrollHeight, o.clientHeight];")

    def scroll_through(self, until: Callable[[], Any] | None = None) -> Any:
        """Scroll the notebook from the top to the end (or until ``until()`` is truthy)."""
        self._scroll("o.scrollTop = 0;")
        while True:
            time.sleep(0.3)
            found = until() if until is not None else None
            if found:
                return found
            top, height, visible = self._scroll("o.scrollTop += o.clientHeight * 0.8;")
            if top + visible >= height - 2:
                time.sleep(0.5)
                return until() if until is not None else None

    def output(self, selector: str, text: str) -> Any:
        """The first output element matching ``selector`` whose text contains ``text``."""
        def find() -> Any:
            return self.js("return [...document.querySelectorAll('.jp-NotebookPanel ' + arguments[0])]"
                           ".find(e => e.textContent.includes(arguments[1]))", selector, text)
        element = self.scroll_through(until=find)
        assert element is not None, f"no output {selector!r} with {text!r} in the notebook"
        for _ in range(3):  # the layout settles as lazily rendered cells above it appear
            self.js("arguments[0].scrollIntoView({block: 'center'})", element)
            time.sleep(0.3)
        return element

    def widget(self, button: str) -> Any:
        """The outermost live widget box that holds a button labelled ``button``."""
        def find() -> Any:
            return self.js("return [...document.querySelectorAll('.jp-NotebookPanel .widget-vbox')]"
                           ".find(v => [...v.querySelectorAll('button')]"
                           ".some(b => b.textContent.trim() === arguments[0]))", button)
        element = self.scroll_through(until=find)
        assert element is not None, f"no widget with a {button!r} button in the notebook"
        for _ in range(3):
            self.js("arguments[0].scrollIntoView({block: 'center'})", element)
            time.sleep(0.3)
        return element

    def notebook_text(self) -> str:
        self.scroll_through()
        return self.js("return document.querySelector('.jp-NotebookPanel').textContent")

    def menu(self, top: str, item: str) -> None:
        from selenium.webdriver.common.by import By

        self.driver.find_element(
            By.XPATH, f"//div[contains(@class, 'lm-MenuBar-itemLabel') and text()='{top}']").click()
        wait_for(lambda: self.driver.find_element(
            By.XPATH, f"//li[contains(@class, 'lm-Menu-item')]"
                      f"[.//div[@class='lm-Menu-itemLabel' and text()='{item}']]"),
            f"the menu item {top} > {item}").click()

    def run_all(self) -> None:
        self.menu("Run", "Run All Cells")
        self.wait_idle(timeout=RUN_ALL_WAIT)
        self.collect_console()

    def dirty(self) -> bool:
        """Whether the open notebook's tab shows it modified."""
        return bool(self.js("return document.querySelector("
                            "'.lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current')"
                            ".classList.contains('jp-mod-dirty')"))

    def errors_shown(self) -> list[str]:
        return self.js("return [...document.querySelectorAll('.jp-NotebookPanel .jp-OutputArea-output"
                       "[data-mime-type=\"application/vnd.jupyter.error\"]')]"
                       ".map(e => e.textContent.slice(0, 500))")

    def screenshot(self, name: str) -> None:
        """Keep a screenshot for a person to look at (COURSE_SCREENSHOTS=folder)."""
        folder = os.environ.get("COURSE_SCREENSHOTS")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            self.driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def _images(element: Any) -> int:
    from selenium.webdriver.common.by import By

    return len(element.find_elements(By.TAG_NAME, "img"))


def _type(element: Any, text: str, *keys: str) -> None:
    from selenium.webdriver.common.keys import Keys

    element.click()
    element.send_keys(Keys.CONTROL, "a")
    element.send_keys(Keys.DELETE)
    element.send_keys(text, *keys)


# -- fixtures: one JupyterLab and one browser for the module -------------------------------------

@pytest.fixture(scope="module")
def lab():
    _find_browser()  # skip before starting anything
    base = Path(tempfile.mkdtemp(prefix="course-browser-"))
    server = Lab(base)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def page(lab):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = _find_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    profile = tempfile.mkdtemp(prefix="course-chromium-")
    for flag in [*CHROME_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield Page(driver, lab)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def zero_shot(page):
    """Notebook 04 opened as shipped (what it looked like is kept), then Run All."""
    page.open("04_zero_shot.ipynb")
    shipped = {"dirty": page.dirty(), "text": page.notebook_text()}
    if "Zero-shot playground" in shipped["text"]:  # else the test on copies says what is wrong
        page.output(".jp-OutputArea-output", "Zero-shot playground")
        page.screenshot("04-shipped-playground")
    page.run_all()
    return shipped


@pytest.fixture(scope="module")
def retrieval(page, zero_shot):
    """Notebook 05 opened as shipped and run (after notebook 04's tests)."""
    page.open("05_retrieval.ipynb")
    shipped = {"dirty": page.dirty()}
    page.run_all()
    return shipped


# -- the tests, in the order a learner meets things ---------------------------------------------

def test_jupyterlab_has_the_course_settings(lab):
    for plugin_id, values in OVERRIDES.items():
        schema = lab.api("GET", f"/lab/api/settings/{plugin_id}")["schema"]["properties"]
        assert {key: schema[key]["default"] for key in values} == values


def test_the_lab_opens_on_the_start_page_with_whole_file_names(page, lab):
    """What the eye meets first: the course's start page, not the Launcher, and whole names."""
    page.driver.get(f"{lab.url}/?token={lab.token}")  # where `course lab` opens the browser
    rendered = wait_for(lambda: page.js(
        "return [...document.querySelectorAll('.jp-RenderedMarkdown')]"
        ".find(e => e.textContent.includes('Course map'))"), "the start page, rendered")
    text = rendered.text
    assert "What to do first" in text and "Where your work is kept" in text
    assert str(lab.progress_file) in text  # where progress lives, this learner's own file
    links = page.js("return [...arguments[0].querySelectorAll('a')].map(a => a.textContent)",
                    rendered)
    assert {p.name for p in lab.workspace.glob("*.ipynb")} <= set(links)
    assert page.js("return document.querySelectorAll('.jp-Launcher').length") == 0
    names = wait_for(lambda: page.js(
        "return [...document.querySelectorAll('.jp-DirListing-itemText')]"
        ".map(e => [e.textContent, e.scrollWidth <= e.clientWidth + 1])"), "the file browser")
    assert {name for name, _ in names} >= {p.name for p in lab.workspace.glob("*.ipynb")}
    assert [name for name, whole in names if not whole] == [], "file names cut off"
    page.screenshot("00-start-page")


def test_shipped_notebook_opens_unmodified(zero_shot):
    assert not zero_shot["dirty"], "04 opened marked as modified: closing it would ask to save"


def test_widgets_read_well_before_the_notebook_runs(zero_shot):
    text = zero_shot["text"]
    assert "Zero-shot playground" in text and "labels: a red circle" in text
    assert "A saved copy of this widget" in text
    assert "VBox(children" not in text and "Progress tracker: 04_zero_shot" in text


def test_run_all_gives_no_error(page, zero_shot):
    assert page.errors_shown() == []


def test_playground_shows_a_chart_at_once_and_for_typed_labels(page, zero_shot):
    from selenium.webdriver.common.by import By

    playground = page.widget("classify")
    assert "pocket: 4 label(s)" in playground.text and _images(playground) == 1  # no click needed
    four = playground.find_element(By.TAG_NAME, "img").get_attribute("src")
    _type(playground.find_element(By.CSS_SELECTOR, ".widget-text input"), "a red circle, a cat")
    playground.find_element(By.XPATH, ".//button[contains(., 'classify')]").click()
    wait_for(lambda: "pocket: 2 label(s)" in playground.text, "the chart for two labels")
    assert _images(playground) == 1
    assert playground.find_element(By.TAG_NAME, "img").get_attribute("src") != four
    page.screenshot("04-playground-typed")


def test_playground_with_empty_labels_says_so_without_a_chart(page, zero_shot):
    from selenium.webdriver.common.by import By

    playground = page.widget("classify")
    _type(playground.find_element(By.CSS_SELECTOR, ".widget-text input"), "")
    playground.find_element(By.XPATH, ".//button[contains(., 'classify')]").click()
    wait_for(lambda: "Type at least one label" in playground.text, "the empty-labels message")
    wait_for(lambda: _images(playground) == 0, "the old chart to go")
    assert "Traceback" not in playground.text and page.errors_shown() == []
    page.screenshot("04-playground-empty")


def test_ticked_tracker_item_reaches_the_progress_file(page, lab, zero_shot):
    from selenium.webdriver.common.by import By

    tracker = page.output(".widget-vbox", "Progress tracker: 04_zero_shot")
    box = next(b for b in tracker.find_elements(By.CSS_SELECTOR, ".widget-checkbox")
               if b.find_element(By.TAG_NAME, "input").is_enabled())
    text = box.text.strip()
    box.find_element(By.TAG_NAME, "input").click()

    def ticked() -> bool:
        items = lab.progress().get("notebooks", {}).get("04_zero_shot", {}).get("items", {})
        return any(entry.get("text") == text and entry.get("done") for entry in items.values())
    wait_for(ticked, f"{text!r} ticked in {lab.progress_file}")


def test_reopened_notebook_shows_inert_copies_and_loses_no_tick(page, lab, zero_shot):
    """Saved, closed, reopened with a new kernel: nothing looks live that is not."""
    from selenium.webdriver.common.by import By

    playground = page.widget("classify")
    _type(playground.find_element(By.CSS_SELECTOR, ".widget-text input"), "a red circle, a cat")
    playground.find_element(By.XPATH, ".//button[contains(., 'classify')]").click()
    wait_for(lambda: "pocket: 2 label(s)" in playground.text, "the chart for two labels")
    page.menu("File", "Save Notebook")
    wait_for(lambda: not page.dirty(), "the notebook to be saved")
    page.collect_console()
    lab.shut_down_kernels()  # as after quitting JupyterLab: no live widget is left to show
    before = lab.progress()
    page.open("04_zero_shot.ipynb")
    assert not page.dirty(), "the reopened notebook is marked modified: closing it would ask"
    text = page.notebook_text()
    assert "model not found" not in text and "Error displaying widget" not in text
    # the tracker is its static copy: no checkbox to click, and it says how to tick
    tracker = page.output(".jp-OutputArea-output", "Progress tracker: 04_zero_shot")
    assert tracker.find_elements(By.CSS_SELECTOR, "input") == []
    assert "cannot be ticked" in tracker.text and "Run this cell to tick" in tracker.text
    # so does every widget: a readable copy with its chart and a note, no dead controls
    copy = page.output(".jp-OutputArea-output", "Zero-shot playground")
    assert "A saved copy of this widget" in copy.text and _images(copy) == 1
    assert page.js("return document.querySelectorAll('.jp-NotebookPanel .widget-vbox, "
                   ".jp-NotebookPanel input[type=checkbox]').length") == 0
    page.screenshot("04-reopened")
    assert lab.progress() == before  # reopening changed nothing in the progress file


def test_retrieval_notebook_opens_unmodified(retrieval):
    assert not retrieval["dirty"]


def test_search_box_finds_five_and_the_slider_changes_how_many(page, retrieval):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = page.widget("search")
    assert "5 best of 200 images for 'a blue square'" in box.text  # the prefilled query, at once
    _type(box.find_element(By.CSS_SELECTOR, ".widget-text input"), "a red circle", Keys.ENTER)
    wait_for(lambda: "5 best of 200 images for 'a red circle'" in box.text, "5 results")
    assert _images(box) == 1
    five = box.find_element(By.TAG_NAME, "img").get_attribute("src")
    _type(box.find_element(By.CSS_SELECTOR, ".widget-readout"), "3", Keys.ENTER)  # k
    wait_for(lambda: "3 best of 200 images for 'a red circle'" in box.text, "3 results")
    assert box.find_element(By.TAG_NAME, "img").get_attribute("src") != five  # a new gallery
    assert page.errors_shown() == []
    page.screenshot("05-search-box")


def test_typing_then_clicking_search_shows_one_gallery_and_logs_nothing(page, retrieval):
    """Issue 20: typing a query and then clicking search ran it twice, and a gallery landed in
    the Log Console. One run shows one gallery in the box, and nothing reaches the log."""
    from selenium.webdriver.common.by import By

    box = page.widget("search")
    _type(box.find_element(By.CSS_SELECTOR, ".widget-text input"), "a green star")  # no Enter
    box.find_element(By.XPATH, ".//button[contains(., 'search')]").click()
    wait_for(lambda: "for 'a green star'" in box.text, "the gallery for the typed query")
    time.sleep(2)  # a second run, or a stray display, would have arrived by now
    assert _images(box) == 1
    # JupyterLab counts outputs that reach no cell or widget in its Log Console's status item
    logged = page.js("return [...document.querySelectorAll('.jp-LogConsoleStatusItem')]"
                     ".map(e => e.textContent)")
    assert not any(ch.isdigit() and ch != "0" for text in logged for ch in text), logged
    assert page.errors_shown() == []
    page.screenshot("05-search-typed-then-clicked")


#: Chromium declining a "leave the page?" prompt (no user gesture in a test): JupyterLab asks
#: when a notebook is modified, e.g. one left mid-run when the page is left.
_LEAVE_PAGE = "Blocked attempt to show a 'beforeunload' confirmation panel"


def test_no_severe_browser_console_errors(page, zero_shot, retrieval):
    severe = [entry["message"] for entry in page.collect_console()
              if entry["level"] == "SEVERE" and _LEAVE_PAGE not in entry["message"]]
    assert severe == []
