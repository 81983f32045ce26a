"""Test helpers for the browser page: `python -m serve.web` on a free loopback port and Debian's headless Chromium."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNTIME = os.path.join(ROOT, "web", "node_modules", "onnxruntime-web", "dist")
# Root in a container needs --no-sandbox; without the background-networking flags Chromium's own connections
# (component updates, sync, QUIC probes) are refused by the sandbox's network, many at a time.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1100,1400"]
PAGE_TIMEOUT = 300  # seconds for one load or draw: the machine is shared, the 144-digit grid is the slowest


def require_browser() -> tuple[str, str]:
    """(chromium, chromedriver) paths; skips when absent, but fails on CI, whose .ci/run installs them."""
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
        reason = f"browser test needs {', '.join(missing)}: apt-get install -y chromium chromium-driver; see .ci/run"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return chromium, driver


class WebServer:
    """`python -m serve.web --export DIR --port 0` in a subprocess; .url is its address once it listens."""

    def __init__(self, export_dir: str):
        self.process = subprocess.Popen([sys.executable, "-m", "serve.web", "--export", export_dir, "--port", "0"],
                                        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if " at http://127.0.0.1:" not in line:
            self.process.kill()
            raise RuntimeError(f"serve.web did not start: {line}{self.process.stderr.read()}")
        self.url = line.split(" at ")[1].split()[0]

    def close(self):
        self.process.terminate()
        self.process.wait(timeout=10)


def start_chromium(chromium: str, driver_path: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_script_timeout(PAGE_TIMEOUT)
    driver.profile_dir = profile
    return driver


def stop_chromium(driver) -> None:
    driver.quit()
    shutil.rmtree(driver.profile_dir, ignore_errors=True)


def wait_state(driver, *, timeout: float = PAGE_TIMEOUT) -> str:
    """Wait until the page is 'ready' or shows an 'error'; returns that state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = driver.execute_script("return document.body && document.body.dataset.state")
        if state in ("ready", "error"):
            return state
        time.sleep(0.1)
    raise AssertionError(f"the page stayed {state!r} for {timeout} s")


def error_text(driver) -> str:
    return driver.execute_script("const e = document.getElementById('error'); return e.style.display === 'block' ? e.textContent : ''")


def open_page(driver, url: str) -> None:
    """Load the page and wait for it to be ready; an error shown on the page fails with its text."""
    driver.get(url)
    if wait_state(driver) != "ready":
        raise AssertionError(f"the page shows an error: {error_text(driver)}")


def set_value(driver, element_id: str, value) -> None:
    driver.execute_script("const e = document.getElementById(arguments[0]); e.value = arguments[1]; e.dispatchEvent(new Event('input'));",
                          element_id, str(value))


def click_and_wait(driver, element_id: str) -> None:
    driver.execute_script("document.body.dataset.state = 'busy'; document.getElementById(arguments[0]).click();", element_id)
    if wait_state(driver) != "ready":
        raise AssertionError(f"the page shows an error: {error_text(driver)}")
