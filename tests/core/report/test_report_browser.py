"""The report in a real headless Chromium: loads with no console error or failed resource (DevTools protocol),
and a `--screenshot` shows the Table 2 and the first overlay strip where the page lays them out."""

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stseg_core.report.build import ReportConfig, build_report

SEED = 5
WINDOW = (1280, 3200)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
]
# the page's own layout facts, read in the browser after load
PROBE = """JSON.stringify({
  table: document.getElementById('table2').getBoundingClientRect().toJSON(),
  overlay: document.querySelector('img.overlay').getBoundingClientRect().toJSON(),
  overlay_src: document.querySelector('img.overlay').getAttribute('src'),
  broken: Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)})"""


def _chromium() -> str:
    exe = shutil.which("chromium")
    assert exe, "chromium missing: make system-deps (Debian chromium)"
    return exe


class DevTools:
    """A headless Chromium driven over its DevTools websocket: navigate, collect errors, evaluate."""

    def __init__(self, profile: Path) -> None:
        import websocket

        self.proc = subprocess.Popen(
            [_chromium(), *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.time() + 30
        while not (port_file.is_file() and port_file.read_text().strip()):
            assert self.proc.poll() is None and time.time() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            page = next(t for t in json.load(resp) if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self.next_id = 0
        self.errors: list[str] = []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        return self.until(lambda m: m.get("id") == self.next_id).get("result", {})

    def until(self, done) -> dict:
        deadline = time.time() + 30
        while time.time() < deadline:
            msg = json.loads(self.ws.recv())
            self._note(msg)
            if done(msg):
                return msg
        raise AssertionError("chromium: no answer in 30 s")

    def _note(self, msg: dict) -> None:
        params = msg.get("params", {})
        if msg.get("method") == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
        elif msg.get("method") == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append(f"console.{params['type']}")
        elif msg.get("method") == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.errors.append(params["entry"]["text"])

    def load(self, url: str) -> None:
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.call("Page.navigate", url=url)
        self.until(lambda m: m.get("method") == "Page.loadEventFired")
        self.call("Runtime.evaluate", expression="new Promise(r => setTimeout(r, 300))", awaitPromise=True)

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"]["value"]

    def close(self) -> None:
        self.ws.close()
        self.proc.terminate()
        self.proc.wait(timeout=20)


@pytest.fixture(scope="module")
def report(tmp_path_factory, make_fused_runs) -> Path:
    root = tmp_path_factory.mktemp("browser")
    make_fused_runs(root, SEED, videos=3)
    build_report(ReportConfig(str(root / "run"), out=str(root / "rep")))
    return root / "rep" / "index.html"


def _ink(shot: np.ndarray, rect: dict) -> float:
    """Share of non-white pixels inside a CSS-pixel rectangle of the screenshot (device scale 1)."""
    x0, y0 = int(rect["left"]), int(rect["top"])
    x1, y1 = int(rect["right"]), int(rect["bottom"])
    assert 0 <= x0 < x1 <= shot.shape[1] and 0 <= y0 < y1 <= shot.shape[0], (rect, shot.shape)
    return float((shot[y0:y1, x0:x1] < 245).any(axis=2).mean())


def test_report_loads_without_errors_and_shows_table_and_overlay(report, tmp_path):
    tools = DevTools(tmp_path / "profile-cdp")
    try:
        tools.load(report.as_uri())
        layout = json.loads(tools.evaluate(PROBE))
        errors = list(tools.errors)
    finally:
        tools.close()
    assert errors == [] and layout["broken"] == []
    shot_path = tmp_path / "shot.png"
    run = subprocess.run(
        [
            _chromium(),
            *FLAGS,
            f"--user-data-dir={tmp_path / 'profile-shot'}",
            f"--screenshot={shot_path}",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and shot_path.is_file(), run.stderr[-2000:]
    shot = np.asarray(Image.open(shot_path).convert("RGB"))
    assert shot.shape[:2] == (WINDOW[1], WINDOW[0])
    assert layout["table"]["height"] > 100 and layout["overlay"]["width"] > 300
    assert _ink(shot, layout["table"]) > 0.05  # text, rules and the highlighted PGMR row
    # the first overlay is on screen as drawn: the screenshot there is the strip PNG, pixel for pixel
    strip = np.asarray(Image.open(report.parent / layout["overlay_src"]).convert("RGB")).astype(int)
    top, left = round(layout["overlay"]["top"]), round(layout["overlay"]["left"])
    shown = shot[top : top + strip.shape[0], left : left + strip.shape[1]].astype(int)
    assert shown.shape == strip.shape and np.abs(shown - strip).mean() < 3
    assert _ink(shot, layout["overlay"]) > 0.5


def test_console_check_catches_a_broken_page(tmp_path):
    """The error collector is not vacuous: a missing image and a script error are both reported."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><img src="missing.png"><script>notDefined();</script></body></html>')
    tools = DevTools(tmp_path / "profile")
    try:
        tools.load(page.as_uri())
        errors = list(tools.errors)
    finally:
        tools.close()
    assert any("notDefined" in e for e in errors) and any("ERR_FILE_NOT_FOUND" in e for e in errors), errors
