"""The README's generated parts stay true: the rule table is the catalog's own output."""

import io
import re
from pathlib import Path

from fargate_audit.cli import commands as cli

README = Path(__file__).resolve().parents[2] / "README.md"


def _block(name: str) -> str:
    text = README.read_text()
    match = re.search(rf"<!-- {name}:begin -->\n(.*?)<!-- {name}:end -->", text, re.S)
    assert match, f"README has no {name} block"
    return match.group(1)


def test_readme_rule_table_is_the_catalog_markdown():
    out = io.StringIO()
    assert cli.main(["rules", "list", "--format", "markdown"], stdout=out) == 0
    assert _block("rule-catalog") == out.getvalue()


def test_readme_names_the_two_setup_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text


def test_readme_parameter_table_is_the_templates():
    from fargate_audit.cli.template import load_template, parameters_markdown

    assert _block("template-parameters") == parameters_markdown(load_template())
