"""Every checkov skip in template.yaml and templates/*.yaml says why.

scripts/checkov.sh runs checkov (in its own venv) on the template, on its SAM
transform and on the member and organizations reader templates; a check that does not
apply is skipped on the resource with ``Metadata: {checkov: {skip: [{id, comment}]}}``.
A skip without a reason would silence a check for good without review, so each one must
carry a real justification. This test needs no checkov: it reads the template like every
other template test.
"""

from __future__ import annotations

import re

import pytest
from support.template import REPO_ROOT, TEMPLATE_PATH, load_template

CHECK_ID = re.compile(r"CKV2?_AWS_\d+")
MIN_WORDS = 6
# checkov also honours inline YAML comments: "# checkov:skip=CKV_AWS_1: reason"
INLINE_SKIP = re.compile(r"checkov:skip=(?P<id>[^\s:]+)(?::(?P<reason>.*))?")
TEMPLATES = (TEMPLATE_PATH, *sorted((REPO_ROOT / "templates").glob("*.yaml")))
PLACEHOLDERS = re.compile(r"^(todo|tbd|fixme|n/?a|none|skip(ped)?|not applicable|false positive)\b", re.I)


def _skips():
    """(resource logical id, skip entry) for every checkov skip in the templates."""
    found = []
    resources = [item for path in TEMPLATES for item in load_template(path)["Resources"].items()]
    for logical_id, resource in resources:
        checkov = (resource.get("Metadata") or {}).get("checkov")
        if checkov is None:
            continue
        assert isinstance(checkov, dict) and set(checkov) == {"skip"}, logical_id
        assert isinstance(checkov["skip"], list) and checkov["skip"], logical_id
        found += [(logical_id, skip) for skip in checkov["skip"]]
    return found


SKIPS = _skips()


def test_the_template_has_checkov_skips_to_check():
    # Guards the parametrisation below against silently finding nothing.
    assert len(SKIPS) >= 1


@pytest.mark.parametrize(
    ("logical_id", "skip"), SKIPS, ids=[f"{logical_id}-{skip.get('id')}" for logical_id, skip in SKIPS]
)
def test_each_skip_names_a_check_and_justifies_it_in_a_sentence(logical_id, skip):
    assert set(skip) == {"id", "comment"}, f"{logical_id}: a skip is exactly {{id, comment}}"
    assert isinstance(skip["id"], str) and CHECK_ID.fullmatch(skip["id"]), (
        f"{logical_id}: bad id {skip['id']!r}"
    )
    comment = skip["comment"]
    assert isinstance(comment, str), f"{logical_id} {skip['id']}: comment must be text"
    words = comment.split()
    assert len(words) >= MIN_WORDS, f"{logical_id} {skip['id']}: justify the skip (>= {MIN_WORDS} words)"
    assert not PLACEHOLDERS.match(comment.strip()), f"{logical_id} {skip['id']}: placeholder comment"


def test_a_check_is_skipped_at_most_once_per_resource():
    pairs = [(logical_id, skip["id"]) for logical_id, skip in SKIPS]
    assert len(pairs) == len(set(pairs))


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_inline_skip_comments_also_carry_a_reason(path):
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = INLINE_SKIP.search(line)
        if match:
            reason = (match.group("reason") or "").strip()
            assert len(reason.split()) >= MIN_WORDS, f"{path.name}:{number}: inline skip without a reason"
