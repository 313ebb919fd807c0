"""The README's read-only IAM policy for `scan` is exactly what a scan calls, and what a
scan builds is a Posture (schemas/posture.schema.json, generated from core/facts.py)."""

import json
import re
from pathlib import Path

import jsonschema
import pytest
from fargate_audit.core import facts
from fargate_audit.local import demo

README = Path(__file__).resolve().parents[2] / "README.md"
POSTURE_SCHEMA = Path(facts.__file__).resolve().parents[1] / "schemas" / "posture.schema.json"


@pytest.fixture(scope="module")
def run():
    return demo.build_and_scan()


def _readme_scan_actions() -> set[str]:
    text = README.read_text()
    block = re.search(r"<!-- scan-iam-policy:begin -->\n```json\n(.*?)```", text, re.S)
    assert block, "README has no scan-iam-policy block"
    policy = json.loads(block.group(1))
    return {action for statement in policy["Statement"] for action in statement["Action"]}


def test_readme_scan_policy_lists_exactly_the_calls_a_scan_makes(run):
    called = {key.replace(".", ":", 1) for key in run.outcome.report["stats"]["api_calls"]}
    # with the actions AWS checks on the caller during those calls (GetWebACL during
    # GetWebACLForResource), which no call names
    called |= {action for action, during in facts.CHECKED_DURING.items() if during in called}
    assert called == _readme_scan_actions()
    assert called == set(facts.read_actions())  # the declarations name every call


def test_every_posture_of_the_demo_scan_is_a_posture(run):
    validator = jsonschema.Draft202012Validator(json.loads(POSTURE_SCHEMA.read_text()))
    postures = run.outcome.postures
    assert len(postures) > 1
    for posture in postures:
        assert list(validator.iter_errors(posture)) == [], posture["task_arn"]
