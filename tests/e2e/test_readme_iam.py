"""The README's read-only IAM policy for `scan` is exactly what a scan calls."""

import json
import re
from pathlib import Path

from fargate_audit.local import demo

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_scan_actions() -> set[str]:
    text = README.read_text()
    block = re.search(r"<!-- scan-iam-policy:begin -->\n```json\n(.*?)```", text, re.S)
    assert block, "README has no scan-iam-policy block"
    policy = json.loads(block.group(1))
    return {action for statement in policy["Statement"] for action in statement["Action"]}


def test_readme_scan_policy_lists_exactly_the_calls_a_scan_makes():
    run = demo.build_and_scan()
    called = {key.replace(".", ":", 1) for key in run.outcome.report["stats"]["api_calls"]}
    assert called == _readme_scan_actions()
