"""`make report`: the demo estate's scan report as JSON and HTML, and a PNG screenshot of
the HTML page (a NET-02 task's drawn path open) for the README.

    python scripts/report_screenshot.py OUT_DIR PNG_PATH
"""

from __future__ import annotations

import sys
from pathlib import Path

from fargate_audit.cli import html
from fargate_audit.core import report as report_mod
from fargate_audit.local import demo
from support.browser import PageWatch, chromium


def main(out_dir: str, png: str) -> int:
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    outcome = demo.build_and_scan().outcome
    with open(folder / "report.json", "w", encoding="utf-8") as handle:
        report_mod.write_report(handle, outcome.postures, outcome.results, **outcome.report_args)
    page_path = folder / "report.html"
    page_path.write_text(html.render(outcome.report), encoding="utf-8")
    with chromium() as browser:
        watch = PageWatch(browser, page_path.resolve().as_uri(), width=1400, height=1050)
        page = watch.open("#status=FAILED&q=storefront")
        task = watch.open_task("prod-web/service:storefront")
        page.locator("details.workload[open] > div > h3").first.scroll_into_view_if_needed()
        task.locator("svg").evaluate("e => e.scrollIntoView({block: 'end'})")
        page.screenshot(path=png)
        if watch.requests or watch.errors:
            print(f"unexpected requests {watch.requests} or errors {watch.errors}", file=sys.stderr)
            return 1
    print(f"wrote {page_path}, {folder / 'report.json'} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
