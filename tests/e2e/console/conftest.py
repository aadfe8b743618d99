"""Browser tests of the staff console: the suite in this process, Chromium in a child (``browser.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.console.browser import CHROMIUM

DRIVER = Path(__file__).with_name("browser.py")
SCREENSHOTS = Path(os.environ.get("CARELOOP_CONSOLE_SCREENSHOTS",
                                  Path(tempfile.gettempdir()) / "careloop-console-screenshots"))


class Browser:
    """One headless Chromium (its own profile); ``page(method, *args)`` calls Playwright's ``Page``."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        root = Path(__file__).resolve().parents[3]
        self.process = subprocess.Popen([sys.executable, str(DRIVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
        assert self._read() == "ready"

    def _read(self) -> Any:
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"the browser process ended (exit {self.process.poll()})")
        answer = json.loads(line)
        if "error" in answer:
            raise AssertionError(f"browser: {answer['error']}")
        return answer["ok"]

    def send(self, **command: Any) -> Any:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self._read()

    def page(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self.send(op="page", method=method, args=list(args), kwargs=kwargs)

    def goto(self, path: str) -> int:
        return self.page("goto", self.base_url + path)["status"]

    def text(self, selector: str) -> str:
        return self.page("inner_text", selector)

    def count(self, selector: str) -> int:
        """How many elements match; -1 while the page is between two documents (a form's redirect)."""
        try:
            return self.page("evaluate", f"document.querySelectorAll({selector!r}).length")
        except AssertionError as error:
            if "context was destroyed" in str(error) or "navigat" in str(error):
                return -1
            raise

    def value(self, selector: str) -> str:
        return self.page("input_value", selector)

    def sign_in(self, username: str, password: str) -> None:
        self.goto("/console/login")
        self.page("fill", "#username", username)
        self.page("fill", "#password", password)
        self.page("click", "#sign-in")
        self.page("wait_for_url", self.base_url + "/console/")

    def post(self, path: str, form: dict[str, str]) -> dict[str, Any]:
        return self.send(op="post", url=self.base_url + path, form=form)

    def close(self) -> None:
        try:
            self.send(op="close")
        except AssertionError:
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture
def open_browser() -> Iterator[Any]:
    """Start Chromium browsers at a base URL; a missing Chromium fails the test (never a silent skip)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: the console's browser tests need Debian's chromium. Install it with "
                    "`scripts/infra.sh chromium` (apt-get install chromium, as root); `make test` does this itself.")
    browsers: list[Browser] = []

    def start(base_url: str) -> Browser:
        browser = Browser(base_url)
        browsers.append(browser)
        return browser

    yield start
    for browser in browsers:
        browser.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    print(f"\nconsole screenshots: {SCREENSHOTS}")
    return SCREENSHOTS
