"""Headless Chromium driven through chromedriver's W3C WebDriver HTTP API, with the
standard library only (no selenium): enough to load a page, read it and photograph it."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.cluster.processes import free_port, require, wait_until


class Browser:
    def __init__(self, directory: Path):
        driver = require("chromedriver", "chromium-driver")
        require("chromium", "chromium")
        self.port = free_port()
        self.log = open(directory / "chromedriver.log", "wb")
        self.process = subprocess.Popen([driver, f"--port={self.port}"], stdout=self.log, stderr=subprocess.STDOUT)
        if not wait_until(self._up, 20):
            self.close()
            raise AssertionError("chromedriver did not start")
        capabilities = {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,800",
                     f"--user-data-dir={directory / 'chromium-profile'}"],
        }}
        self.session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}})["sessionId"]

    def _up(self) -> bool:
        try:
            return self._call("GET", "/status")["ready"]
        except OSError:
            return False

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)["value"]

    def _in_session(self, method: str, path: str, body: dict | None = None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def open(self, url: str) -> None:
        self._in_session("POST", "/url", {"url": url})

    def run(self, script: str, *args):
        """The value of a JavaScript function body run in the page."""
        return self._in_session("POST", "/execute/sync", {"script": script, "args": list(args)})

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self._in_session("GET", "/screenshot")))

    def close(self) -> None:
        try:
            if getattr(self, "session", None):
                self._in_session("DELETE", "")
        finally:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.log.close()


def wait_for(browser: Browser, script: str, timeout: float, *args):
    """Poll a script until it returns something true; that value (or None at the deadline)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = browser.run(script, *args)
        if value:
            return value
        time.sleep(0.1)
    return None
