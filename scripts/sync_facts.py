#!/usr/bin/env python3
"""Rewrite the committed copies of what core/facts.py declares.

    .venv/bin/python scripts/sync_facts.py [--check | --policy]

- ``layers/fargate_audit/schemas/posture.schema.json``: the JSON Schema of the Posture
  TypedDicts (``facts.posture_schema``);
- ``rules/schema.json``: the ``$defs.facts`` enum (the posture facts a rule may require);
- ``README.md``: the scan IAM policy between ``<!-- scan-iam-policy:begin -->`` and
  ``<!-- scan-iam-policy:end -->`` (``facts.scan_policy``);
- ``template.yaml`` and ``templates/member.yaml`` (the member accounts' audit role): the
  ``Action`` list of every ``Sid: Ec2DescribeNetwork`` and ``Sid: ElbDescribeLoadBalancing``
  statement (the EC2 and Elastic Load Balancing reads of the declared facts; those
  describes take no resource-level permission).
  A fact read from another service needs its statement written once by hand;
  tests/functional/test_template.py names an action a function lacks.

Nothing else in those files is touched. ``--check``: list the stale files, change nothing
(exit 1 when one is). ``--policy``: print the scan policy. tests/unit/test_facts.py fails
while a committed copy differs from what this script would write.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "layers"))

from fargate_audit.core import facts  # noqa: E402

POSTURE_SCHEMA = REPO / "layers" / "fargate_audit" / "schemas" / "posture.schema.json"
CATALOG_SCHEMA = REPO / "layers" / "fargate_audit" / "catalog" / "schema.json"
README = REPO / "README.md"
TEMPLATE = REPO / "template.yaml"
MEMBER_TEMPLATE = REPO / "templates" / "member.yaml"
# Sid -> the service whose actions of the declared facts its Action list holds (reads that
# take no resource-level permission).
GENERATED_STATEMENTS = {"Ec2DescribeNetwork": "ec2", "ElbDescribeLoadBalancing": "elasticloadbalancing"}


def _statement(sid: str, service: str) -> re.Pattern[str]:
    return re.compile(
        rf"(- Sid: {sid}\b[^\n]*\n\s+Effect: Allow\n\s+Action:\n)((?:( +)- {re.escape(service)}:\w+\n)+)"
    )


_POLICY_BLOCK = re.compile(
    r"(<!-- scan-iam-policy:begin -->\n```json\n)(.*?)(```\n<!-- scan-iam-policy:end -->)", re.S
)


def catalog_schema_text(current: str) -> str:
    """rules/schema.json with its facts enum set to the declared facts."""
    schema = json.loads(current)
    items = schema["$defs"]["facts"]["items"]
    items["description"] = "A posture fact (fargate_audit/core/facts.py FACTS; the keys of Posture.errors)."
    items["enum"] = list(facts.FACT_NAMES)
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def readme_text(current: str) -> str:
    """README.md with its scan-iam-policy block set to the derived policy."""
    if not _POLICY_BLOCK.search(current):
        raise ValueError("README.md has no scan-iam-policy block")
    return _POLICY_BLOCK.sub(lambda m: m.group(1) + facts.scan_policy_text() + m.group(3), current, count=1)


def service_actions(service: str = "ec2") -> list[str]:
    """The actions of ``service`` the declared facts read, in declaration order."""
    seen: dict[str, None] = {}
    for name in facts.FACT_NAMES:
        seen.update((a, None) for a in facts.BY_NAME[name].actions if a.startswith(f"{service}:"))
    return list(seen)


def template_text(current: str, name: str = "template.yaml") -> str:
    """A template with each generated statement's actions (GENERATED_STATEMENTS) set to
    the facts' reads of its service."""
    for sid, service in GENERATED_STATEMENTS.items():
        pattern = _statement(sid, service)
        if not pattern.search(current):
            raise ValueError(f"{name} has no {sid} statement")
        listed = service_actions(service)
        current = pattern.sub(
            lambda m, listed=listed: m.group(1) + "".join(f"{m.group(3)}- {a}\n" for a in listed), current
        )
    return current


def expected() -> dict[Path, str]:
    """Each generated file -> the text it should have."""
    return {
        POSTURE_SCHEMA: facts.posture_schema_text(),
        CATALOG_SCHEMA: catalog_schema_text(CATALOG_SCHEMA.read_text(encoding="utf-8")),
        README: readme_text(README.read_text(encoding="utf-8")),
        TEMPLATE: template_text(TEMPLATE.read_text(encoding="utf-8")),
        MEMBER_TEMPLATE: template_text(MEMBER_TEMPLATE.read_text(encoding="utf-8"), "templates/member.yaml"),
    }


def stale() -> list[Path]:
    return [
        path
        for path, text in expected().items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="only list the stale files")
    group.add_argument("--policy", action="store_true", help="print the scan IAM policy")
    args = parser.parse_args(argv)
    if args.policy:
        sys.stdout.write(facts.scan_policy_text())
        return 0
    outdated = stale()
    for path in outdated:
        print(f"{'stale' if args.check else 'writing'}: {path.relative_to(REPO)}")
    if args.check:
        return 1 if outdated else 0
    for path, text in expected().items():
        if path in outdated:
            path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
