"""A headless Chromium driven by Playwright, in a process of its own, commanded by JSON lines on stdin.

Why a process: the tests run the suite in their own process under eventlet's monkey-patching, and
Playwright's sync API runs an asyncio loop on greenlets of its own; in one process the two fight over
the hub (the gateway stops answering while Playwright waits on it). Driving Chromium from a plain
Python child keeps the suite's process green: the test's read of the child's answer (a patched pipe)
yields to the gateway serving the browser. Each line in is ``{"op": ..., ...}``, each line out is
``{"ok": value}`` or ``{"error": message}``.

Chromium is Debian's (``/usr/bin/chromium``; ``scripts/infra.sh chromium`` installs it), launched with a
fresh user-data-dir; Playwright's own browser download is never used.
"""

from __future__ import annotations

import json
import sys
import tempfile
from typing import Any

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def plain(value: Any) -> Any:
    """What a Playwright call returned, as JSON (a navigation's response is its status)."""
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    if hasattr(value, "status") and hasattr(value, "url"):
        return {"status": value.status, "url": value.url}
    return repr(value)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="careloop-chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=ARGS, headless=True,
            viewport={"width": 1366, "height": 768})
        page = context.pages[0] if context.pages else context.new_page()
        page.set_default_timeout(15_000)
        print(json.dumps({"ok": "ready"}), flush=True)
        for line in sys.stdin:
            command = json.loads(line)
            op = command["op"]
            try:
                if op == "close":
                    break
                if op == "page":
                    attribute = getattr(page, command["method"])  # a method, or a property such as url
                    result = (attribute(*command.get("args", ()), **command.get("kwargs", {}))
                              if callable(attribute) else attribute)
                elif op == "cookies":
                    result = context.cookies()
                elif op == "clear_cookies":
                    result = context.clear_cookies()
                elif op == "post":  # a form post from this browser's cookies (no page, no script)
                    answer = context.request.post(command["url"], form=command["form"], max_redirects=0)
                    result = {"status": answer.status, "text": answer.text()}
                else:
                    raise ValueError(f"unknown op {op}")
                print(json.dumps({"ok": plain(result)}), flush=True)
            except Exception as error:  # the test reads it and fails with Playwright's message
                print(json.dumps({"error": f"{type(error).__name__}: {error}"}), flush=True)
        context.close()


if __name__ == "__main__":
    main()
