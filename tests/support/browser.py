"""Headless Chromium for the HTML report's tests and screenshot: Debian's ``chromium``
(installed by ``make browser``, a prerequisite of ``make pytest``), driven by Playwright
for Python (requirements-dev.txt). ``playwright install`` downloads browsers from outside
and is never needed. A missing piece is a clear failure, not a skip: CI must run these."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager


class BrowserMissing(RuntimeError):
    pass


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        raise BrowserMissing(
            "chromium is not on PATH: run `make browser` (apt-get install -y chromium chromium-driver, "
            "as root) so the HTML report's browser tests can run"
        )
    return path


@contextmanager
def chromium() -> Iterator:
    """A launched headless Chromium (Playwright ``Browser``)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise BrowserMissing(
            f"Playwright for Python is not installed ({exc}): pip install -r requirements-dev.txt"
        ) from exc
    path = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


class PageWatch:
    """A page that lets only its own ``file:`` document load and records every other
    request it tried, its console errors and its uncaught exceptions."""

    def __init__(self, browser, url: str, width: int = 1400, height: int = 1000):
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.url = url
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type in ("error", "warning") and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.route("**/*", self._route)

    def _route(self, route) -> None:
        url = route.request.url
        if url.split("#", 1)[0] == self.url.split("#", 1)[0]:
            route.continue_()
        else:
            self.requests.append(url)
            route.abort()

    def open(self, fragment: str = ""):
        self.page.goto(self.url + fragment)
        self.page.wait_for_selector("#f-count:not(:empty)")
        return self.page

    def visible_tasks(self) -> set[str]:
        self.page.click("#f-expand")
        return set(
            self.page.eval_on_selector_all(
                "details.workload:not([hidden]) details.task:not([hidden])",
                "els => els.map(e => e.dataset.task)",
            )
        )

    def open_task(self, workload: str, index: int = 0):
        page = self.page
        page.click(f"details.workload[data-workload='{workload}'] > summary")
        task = page.locator(f"details.workload[data-workload='{workload}'] details.task").nth(index)
        task.locator("summary").click()
        task.locator("svg").wait_for()
        return task
