"""The built book in headless Chromium: every page loads, no console errors, no missing images (DevTools protocol)."""
import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from polyplib import book

websocket = pytest.importorskip("websocket", reason="websocket-client is needed to drive Chromium (pip install websocket-client)")

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--remote-debugging-port=0", "--window-size=1280,1000", "about:blank")


def _install_chromium() -> str | None:
    """Install Debian's chromium with apt-get when it is missing; the path of the binary or None."""
    if shutil.which("chromium"):
        return shutil.which("chromium")
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return None
    for cmd in (["apt-get", "install", "-y", "chromium"], ["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        subprocess.run(cmd, capture_output=True, timeout=900, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if cmd[1] == "install" and shutil.which("chromium"):
            break
    return shutil.which("chromium")


@pytest.fixture(scope="module")
def chromium() -> str:
    """Path of a headless-capable Chromium (installed with apt-get when missing)."""
    path = _install_chromium()
    if path is None:
        pytest.skip("chromium is not installed and `apt-get install -y chromium` is impossible here (no root or no apt)")
    return path


@pytest.fixture(scope="module")
def html_dir(tmp_path_factory) -> Path:
    """The book built from the committed, executed notebooks (no execution: fast)."""
    return book.run_book(execute=False, out=tmp_path_factory.mktemp("book"))


class Page:
    """A minimal DevTools-protocol client for one Chromium tab that records console errors and exceptions."""

    def __init__(self, ws_url: str):
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.errors: list[str] = []
        self.loaded = False
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")

    def _handle(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            self.errors.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append("exception: " + details.get("exception", {}).get("description", details["text"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.errors.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}")
        elif method == "Page.loadEventFired":
            self.loaded = True

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._handle(message)

    def goto(self, url: str, settle: float = 0.5) -> None:
        self.loaded = False
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + 30
        while not self.loaded and time.monotonic() < deadline:
            self._handle(json.loads(self.ws.recv()))
        assert self.loaded, f"{url} did not finish loading in 30 s"
        end = time.monotonic() + settle  # let deferred scripts run and report
        self.ws.settimeout(0.1)
        while time.monotonic() < end:
            try:
                self._handle(json.loads(self.ws.recv()))
            except websocket.WebSocketTimeoutException:
                pass
        self.ws.settimeout(30)

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def screenshot(self, path: Path, max_height: int = 6000) -> None:
        """The whole page (up to `max_height` CSS pixels), not only the viewport."""
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], max_height), "scale": 1}
        shot = self.call("Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))


@pytest.fixture(scope="module")
def page(chromium, tmp_path_factory):
    """One headless Chromium tab driven over the DevTools protocol."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    proc = subprocess.Popen([chromium, *CHROMIUM_FLAGS[:-1], f"--user-data-dir={profile}", CHROMIUM_FLAGS[-1]],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert port_file.exists(), "chromium did not open its DevTools port within 60 s"
        time.sleep(0.2)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as response:
            target = next(t for t in json.load(response) if t["type"] == "page")
        tab = Page(target["webSocketDebuggerUrl"])
        yield tab
        tab.ws.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _pages() -> list[str]:
    """Every HTML page of the table of contents, relative to the HTML root (the index first)."""
    toc = yaml.safe_load((book.REPO_ROOT / "book" / "_toc.yml").read_text())
    files = [toc["root"]] + [ch["file"] for part in toc["parts"] for ch in part["chapters"]]
    return ["index.html"] + [f"{f}.html" for f in files]


def test_toc_lists_every_notebook():
    pages = _pages()
    assert [p for p in pages if p.startswith("notebooks/")] == [f"notebooks/{n}.html" for n in book.NOTEBOOKS]


def test_every_page_loads_without_console_errors_or_missing_images(page, html_dir, tmp_path):
    shots = [tmp_path]
    if os.environ.get("POLYPLIB_SCREENSHOTS"):
        shots.append(book.REPO_ROOT / "screenshots")
        shots[-1].mkdir(exist_ok=True)
    problems, images_seen = {}, 0
    for rel in _pages():
        target = html_dir / rel
        assert target.exists(), f"{rel} was not built"
        page.errors.clear()
        page.goto(target.as_uri())
        broken = page.evaluate("Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)"
                               ".map(i => i.getAttribute('src').slice(0, 80))")
        images_seen += page.evaluate("document.images.length")
        title = page.evaluate("document.querySelector('main h1') ? document.querySelector('main h1').textContent : ''")
        if broken or page.errors or not title:
            problems[rel] = {"broken_images": broken, "errors": list(page.errors), "h1": title}
        for folder in shots:
            page.screenshot(folder / (rel.replace("/", "_").replace(".html", ".png")))
    assert not problems, f"pages with problems: {json.dumps(problems, indent=1)}"
    assert images_seen >= len(book.NOTEBOOKS), f"only {images_seen} images in the whole book: figures are missing"
    assert (tmp_path / "index.png").stat().st_size > 10_000


def test_browser_check_catches_a_missing_image(page, tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text('<html><body><h1>x</h1><img src="missing.png"><script>console.error("boom")</script></body></html>')
    page.errors.clear()
    page.goto(broken.as_uri())
    assert page.evaluate("Array.from(document.images).filter(i => i.naturalWidth === 0).length") == 1
    assert any("boom" in e for e in page.errors)
