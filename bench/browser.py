"""The browser page driven for real: `python -m serve.web` on a free loopback port and Debian's headless Chromium."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNTIME = os.path.join(ROOT, "web", "node_modules", "onnxruntime-web", "dist")
# Root in a container needs --no-sandbox; without the background-networking flags Chromium's own connections
# (component updates, sync, QUIC probes) go out and are refused, many at a time.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1100,1250"]
PAGE_TIMEOUT = 600  # seconds for one load or draw: the machine is shared, and 144 digits take minutes there


class BrowserMissing(RuntimeError):
    """Chromium, chromium-driver, selenium or onnxruntime-web is not installed."""


def find_browser() -> tuple[str, str]:
    """(chromium, chromedriver) paths, or BrowserMissing saying what to install."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", chromium), ("chromium-driver", driver)) if not path]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -r requirements.txt)")
    if not os.path.isdir(RUNTIME):
        missing.append("web/node_modules (npm ci in web/)")
    if missing:
        raise BrowserMissing(f"the browser page needs {', '.join(missing)}: "
                             "apt-get install -y chromium chromium-driver && (cd web && npm ci)")
    return chromium, driver


class WebServer:
    """`python -m serve.web --export DIR [--export DIR ...] --port 0` in a subprocess; .url is its address once it listens."""

    def __init__(self, exports: str | list[str]):
        flags = [arg for path in ([exports] if isinstance(exports, str) else exports) for arg in ("--export", path)]
        self.process = subprocess.Popen([sys.executable, "-m", "serve.web", *flags, "--port", "0"],
                                        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if " at http://127.0.0.1:" not in line:
            self.process.kill()
            raise RuntimeError(f"serve.web did not start: {line}{self.process.stderr.read()}")
        self.url = line.split(" at ")[1].split()[0]

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Page:
    """Headless Chromium (selenium + chromium-driver, fresh profile) on the page; .driver is the WebDriver."""

    def __init__(self):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        chromium, driver_path = find_browser()
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        self.profile = tempfile.mkdtemp(prefix="chromium-profile-")
        for flag in CHROMIUM_FLAGS + [f"--user-data-dir={self.profile}"]:
            options.add_argument(flag)
        # Explicit binary and driver paths: selenium never looks for (or downloads) a browser of its own.
        self.driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)

    def close(self) -> None:
        self.driver.quit()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def wait(self, timeout: float = PAGE_TIMEOUT) -> str:
        """Wait until the page is 'ready' or shows an 'error'; returns that state."""
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = self.js("return document.body && document.body.dataset.state")
            if state in ("ready", "error"):
                return state
            time.sleep(0.1)
        raise TimeoutError(f"the page stayed {state!r} for {timeout} s")

    def error(self) -> str:
        """The error box's text, '' when none is shown."""
        return self.js("const e = document.getElementById('error'); return e && e.style.display === 'block' ? e.textContent : ''")

    def expect_ready(self) -> None:
        if self.wait() != "ready":
            raise AssertionError(f"the page shows an error: {self.error()}")

    def open(self, url: str) -> str:
        """Load the page; returns 'ready' or 'error'."""
        self.driver.get(url)
        return self.wait()

    def set(self, element_id: str, value) -> None:
        self.js("const e = document.getElementById(arguments[0]); e.value = arguments[1]; e.dispatchEvent(new Event('input'));",
                element_id, str(value))

    def click(self, element_id: str) -> None:
        """Click a button and wait for the draw it starts; an error on the page raises AssertionError."""
        self.js("document.body.dataset.state = 'busy'; document.getElementById(arguments[0]).click();", element_id)
        self.expect_ready()

    def upload(self, element_id: str, path: str) -> None:
        self.driver.find_element("id", element_id).send_keys(os.path.abspath(path))

    def result(self, name: str) -> dict:
        """window.pixelcnnPage[name]: the last 'sampled' or 'completed' draw (images, ms, ...)."""
        return self.js("return window.pixelcnnPage[arguments[0]]", name)
