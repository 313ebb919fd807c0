#!/usr/bin/env python3
"""Validate the shipped rule catalog in full, then record its digest.

    .venv/bin/python scripts/catalog_digest.py [--check]

Writes ``layers/fargate_audit/catalog/validated.json`` (``{"sha256": ...}``, the digest
``core.rules.catalog_digest`` computes over schema.json, parameters.yaml, mappings.yaml
and every rule.yaml). While the catalog's files match it, ``load_catalog`` skips their
JSON Schema validation; a file edited since (in a checkout or an installation) is
validated in full at every load. Nothing is written when the catalog has a problem.
``--check``: exit 1 when the recorded digest is stale, change nothing.
tests/unit/test_catalog.py fails while it is stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "layers"))

from fargate_audit.core import rules  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the digest is stale")
    args = parser.parse_args()
    catalog = rules.CATALOG_DIR
    problems = rules.validate_rules_dir(catalog)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    digest = rules.catalog_digest(catalog)
    if rules.validated_digest(catalog) == digest:
        print(f"{rules.VALIDATED_FILE}: up to date")
        return 0
    if args.check:
        print(f"{rules.VALIDATED_FILE}: stale (run scripts/catalog_digest.py)", file=sys.stderr)
        return 1
    text = json.dumps({"sha256": digest}, indent=2) + "\n"
    (catalog / rules.VALIDATED_FILE).write_text(text, encoding="utf-8")
    print(f"{rules.VALIDATED_FILE}: written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
